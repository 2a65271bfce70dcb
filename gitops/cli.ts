import type { Command } from 'commander';

/** Registers this module's commands on the CLI. */
export function registerGitopsCommands(_program: Command): void {}
