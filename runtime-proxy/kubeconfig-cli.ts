import type { Command } from 'commander';

/** Registers `portcullis kubeconfig`. */
export function registerKubeconfigCommands(_program: Command): void {}
