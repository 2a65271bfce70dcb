import { Option, type Command } from 'commander';
import { ConfigError } from './config.ts';
import { proxyManifests } from './deploy/manifests.ts';
import { formatRecord, parseTime, searchAuditFiles } from './audit/search.ts';
import { verifyAuditFiles } from './audit/verify-files.ts';
import { loadRecording, playRecording } from './recording/replay.ts';
import { runProxy } from './run.ts';

export { runProxy };

/** Registers `portcullis proxy`, `portcullis audit` and `portcullis replay`. */
export function registerProxyCommands(program: Command): void {
  registerReplayCommand(program);
  const proxy = program
    .command('proxy')
    .description('Run the runtime proxy: authenticate, authorize from the signed bundle, impersonate, audit')
    // Not required at the parser: `proxy manifests` runs without it.
    .option('--config <file>', 'proxy configuration (YAML); required to run')
    .action(async (o: { config?: string }) => {
      if (o.config === undefined) throw new ConfigError("portcullis proxy: --config FILE is required (or run 'portcullis proxy manifests')");
      await runProxy(o.config);
    });
  proxy
    .command('manifests')
    .description("Render the proxy's Kubernetes manifests for one cluster (runtime-proxy/deploy), from generated/: issuers, trusted keys, host name")
    .requiredOption('--image <ref>', 'the proxy image (built from packaging/Containerfile)')
    .requiredOption('--cluster <name>', 'the cluster the proxy is deployed to and fronts')
    .option('--generated <dir>', "the compiler's output", 'generated')
    .option('--audience <aud...>', 'token audiences the proxy accepts', ['portcullis'])
    .option('--groups-claim <claim>', "the claim people's groups come in", 'groups')
    .option('--replicas <n>', 'replicas (at least 2)', (v) => Number.parseInt(v, 10))
    .addOption(new Option('--service-type <type>', 'the Service type').choices(['ClusterIP', 'LoadBalancer', 'NodePort']).default('ClusterIP'))
    .action((o: { image: string; cluster: string; generated: string; audience: string[]; groupsClaim: string; replicas?: number; serviceType: 'ClusterIP' | 'LoadBalancer' | 'NodePort' }) => {
      process.stdout.write(
        proxyManifests({
          generated: o.generated,
          cluster: o.cluster,
          image: o.image,
          audiences: o.audience,
          groupsClaim: o.groupsClaim,
          serviceType: o.serviceType,
          ...(o.replicas !== undefined ? { replicas: o.replicas } : {}),
        }),
      );
    });
  const audit = program.command('audit').description("the proxy's audit log");
  audit
    .command('search')
    .description('the records of one or more replicas\' files that match every filter given, oldest first')
    .argument('<files...>', 'audit files (several replicas, rotated ones too)')
    .option('--user <name>', 'the person as authenticated (oidc:alice@acme.example) or as they acted upstream')
    .option('--cluster <name>')
    .option('--grant <id>', 'the grant that allowed the request')
    .addOption(new Option('--decision <d>').choices(['allow', 'deny', 'error']))
    .option('--since <time>', 'received at or after: a time (2026-12-04T10:00:00Z) or a duration ago (15m, 2h, 7d)')
    .option('--until <time>', 'received before (same forms)')
    .addOption(new Option('--stage <stage>', 'only this stage').choices(['ResponseStarted', 'ResponseComplete']))
    .option('--json', 'the matching records as JSON lines, unchanged')
    .action(async (files: string[], o: { user?: string; cluster?: string; grant?: string; decision?: 'allow' | 'deny' | 'error'; since?: string; until?: string; stage?: 'ResponseStarted' | 'ResponseComplete'; json?: boolean }) => {
      const now = Date.now();
      const { json, since, until, ...filters } = o;
      const r = await searchAuditFiles(files, { ...filters, ...(since !== undefined ? { since: parseTime(since, now) } : {}), ...(until !== undefined ? { until: parseTime(until, now) } : {}) });
      for (const e of r.events) process.stdout.write(`${json ? JSON.stringify(e) : formatRecord(e)}\n`);
      process.stderr.write(`${r.events.length} of ${r.scanned} records in ${files.length} files${r.unreadable.length > 0 ? `; not JSON, skipped: ${r.unreadable.join(', ')}` : ''}\n`);
      if (r.unreadable.length > 0) process.exitCode = 1;
    });
  audit
    .command('verify')
    .description('prove a log complete and unmodified: every record follows the one before (hash chain), every checkpoint is signed; exit 1 at the first break, naming its file:line')
    .argument('<files...>', "one replica's log files (rotated ones too, in any order)")
    .option('--key <pem...>', "trusted checkpoint public keys (default: FILE.pub.pem beside the newest file, which proves less: whoever can edit the log can edit it too)")
    .action((files: string[], o: { key?: string[] }) => {
      const r = verifyAuditFiles(files, o.key);
      process.stdout.write(`${r.text}\n`);
      if (!r.ok) process.exitCode = 1;
    });
}

/** Registers `portcullis replay`. */
function registerReplayCommand(program: Command): void {
  program
    .command('replay')
    .description('play a recorded exec or attach session (asciicast v2) in this terminal; with --audit, first prove it is the recording its audit record names')
    .argument('<id>', "the recording's id (the session's audit ID, portcullis.dev/recording) or a .cast file")
    .option('--dir <dir>', "where the proxy writes recordings (its audit.recordings.dir; default: recordings/ beside the audit file)", 'recordings')
    .option('--audit <files...>', 'audit files: the recording must have the SHA-256 its ResponseComplete record names (exit 1 if not)')
    .option('--speed <n>', 'playback speed', (v) => Number.parseFloat(v), 1)
    .option('--idle-limit <seconds>', 'longest pause kept', (v) => Number.parseFloat(v), 2)
    .option('--no-wait', 'print at once, without the timing')
    .option('--input', 'also show what was typed, where the grant recorded it')
    .action(async (id: string, o: { dir: string; audit?: string[]; speed: number; idleLimit: number; wait: boolean; input?: boolean }) => {
      const opts = { dir: o.dir, ...(o.audit ? { audit: o.audit } : {}), speed: o.speed, idleLimit: o.idleLimit, noWait: !o.wait, input: o.input === true };
      const { cast, verified } = await loadRecording(id, opts);
      const h = cast.header;
      process.stderr.write(`${h.title ?? id}, ${new Date(h.timestamp * 1000).toISOString()}, ${h.width}x${h.height}${verified ? ', digest matches its audit record' : ''}\n`);
      await playRecording(cast, (s) => process.stdout.write(s), opts);
    });
}
