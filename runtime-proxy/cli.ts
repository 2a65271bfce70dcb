import type { Command } from 'commander';

/** Registers this module's commands on the CLI. */
export function registerProxyCommands(_program: Command): void {}
