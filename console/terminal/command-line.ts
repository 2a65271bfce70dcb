/**
 * The browser shell's command line: no shell ever reads what a person types. A line is split on
 * spaces into argv here; it must start with `kubectl`, and may hold only characters no shell or
 * kubectl option could turn into something else (SECURITY rule 30). Pure.
 */

/** What a line may contain: letters, digits, and `-_./:=,@%+`, separated by spaces. */
const SAFE = /^[A-Za-z0-9\-_./:=,@%+ ]*$/;

/** Options that would point kubectl at another server or credential than the terminal's own. */
const REFUSED_FLAGS = ['--kubeconfig', '--token', '--server', '-s', '--insecure-skip-tls-verify', '--username', '--password', '--client-certificate', '--client-key', '--certificate-authority', '--tls-server-name', '--cluster', '--user', '--as', '--as-group', '--as-uid'];

/** A single-dash cluster of shorthand flags with an `s` among its letters (before any `=`). */
const SHORTHAND_SERVER = /^-[A-Za-z]*s/;

/** What `kubectl config` may do here. */
const CONFIG_READS = ['view', 'get-contexts', 'get-clusters', 'current-context', 'use-context'];

/** Subcommands that listen on the host they run on. */
const LISTENERS = ['proxy', 'port-forward'];

/** A parsed line: the argv to run, or why it is refused. */
export type CommandLine = { readonly ok: true; readonly argv: readonly string[] } | { readonly ok: false; readonly error: string } | { readonly ok: true; readonly argv: readonly []; readonly empty: true };

/** Splits and checks one typed line. */
export function parseCommandLine(line: string): CommandLine {
  const trimmed = line.trim();
  if (trimmed === '') return { ok: true, argv: [], empty: true };
  if (trimmed.length > 2000) return { ok: false, error: 'the line is too long (2000 characters at most)' };
  if (!SAFE.test(trimmed)) {
    const bad = [...new Set([...trimmed].filter((c) => !SAFE.test(c)))].map((c) => (c < ' ' || c > '~' ? `U+${c.codePointAt(0)?.toString(16).padStart(4, '0') ?? ''}` : c));
    return { ok: false, error: `refused: ${bad.join(' ')} not allowed here (no shell: only kubectl with plain arguments)` };
  }
  const argv = trimmed.split(/ +/);
  if (argv[0] !== 'kubectl') return { ok: false, error: `refused: only kubectl runs here, not ${argv[0] ?? ''}` };
  for (const a of argv.slice(1)) {
    const name = a.split('=', 1)[0] ?? '';
    if (REFUSED_FLAGS.includes(name)) return { ok: false, error: `refused: ${name} (this terminal talks to the proxy as you, with your session only)` };
    // kubectl's flag parser (pflag) takes shorthand flags in clusters with the value attached:
    // `-shttp://elsewhere` and `-As http://elsewhere` set --server too. No cluster may hold an `s`.
    if (SHORTHAND_SERVER.test(a)) return { ok: false, error: `refused: ${a} (it sets -s, the server; write flags apart, e.g. -n NAMESPACE)` };
    // These open ports on the console's host, where any local process could use them as you.
    if (LISTENERS.includes(a)) return { ok: false, error: `refused: kubectl ${a} (it would listen on the console's host as you)` };
  }
  // The kubeconfig is the terminal's tie to the proxy: it may be read and its context chosen, not rewritten
  // (`kubectl config set clusters.X.server …` would point the session somewhere else).
  const c = argv.indexOf('config');
  if (c > 0 && !CONFIG_READS.includes(argv[c + 1] ?? '')) return { ok: false, error: `refused: kubectl config ${argv[c + 1] ?? ''} (here the kubeconfig can be viewed and its context chosen, not changed)` };
  return { ok: true, argv };
}
