/** The web console (issue 17): served by the proxy under /console. */
export { PortcullisConsole, type ConsoleHost } from './console-server.ts';
export { CONSOLE_PREFIX } from './web-security.ts';
export type { ConsoleConfig, TerminalConfig } from './config.ts';
