import type { Command } from 'commander';

/** Registers this module's commands on the CLI. */
export function registerCompilerCommands(_program: Command): void {}
