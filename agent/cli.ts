import type { Command } from 'commander';
import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { pino } from 'pino';
import { TunnelAgent } from './agent.ts';

/** Where a pod finds its ServiceAccount (the kubelet mounts it there). */
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Registers `portcullis agent` (in the cluster) and `portcullis cluster add` (onboarding). */
export function registerAgentCommands(program: Command): void {
  registerAgentCommand(program);
  registerClusterCommands(program);
}

/** `portcullis agent`: all the agent's own entry point (agent/main.ts) loads. */
export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('Run in a cluster: connect out to every proxy replica over TLS and carry its requests to this cluster\'s kube-apiserver (no inbound port; the credential stays here)')
    .requiredOption('--cluster <name>', 'the cluster this agent serves')
    .requiredOption('--proxy <url...>', "every proxy replica's URL (https://HOST:PORT); a tunnel to each")
    .requiredOption('--key <pem>', "the cluster's agent key (Ed25519, PKCS#8 PEM)")
    .option('--registration <file>', 'the registration credential from the bootstrap manifest (used once, on the first connection)')
    .option('--proxy-ca <pem>', "the CA of the proxies' serving certificate (default: the system store)")
    .option('--apiserver <url>', 'kube-apiserver (default: in-cluster, from KUBERNETES_SERVICE_HOST and _PORT)')
    .option('--apiserver-ca <pem>', "kube-apiserver's CA", `${SA_DIR}/ca.crt`)
    .option('--token-file <file>', "the agent's ServiceAccount token (impersonate only)", `${SA_DIR}/token`)
    .action((o: { cluster: string; proxy: string[]; key: string; registration?: string; proxyCa?: string; apiserver?: string; apiserverCa: string; tokenFile: string }) => {
      const log = pino({ name: 'portcullis-agent' }, pino.destination(2));
      const host = process.env['KUBERNETES_SERVICE_HOST'];
      const apiserver = o.apiserver ?? (host ? `https://${host.includes(':') ? `[${host}]` : host}:${process.env['KUBERNETES_SERVICE_PORT'] ?? '443'}` : undefined);
      if (!apiserver) throw new Error('no --apiserver, and not in a cluster (KUBERNETES_SERVICE_HOST is not set)');
      const registration = o.registration !== undefined && existsSync(o.registration) ? readFileSync(o.registration, 'utf8').trim() : undefined;
      const agent = new TunnelAgent({
        cluster: o.cluster,
        proxies: o.proxy,
        key: createPrivateKey(readFileSync(o.key)),
        ...(registration ? { registration } : {}),
        ...(o.proxyCa !== undefined ? { proxyCa: readFileSync(o.proxyCa) } : {}),
        apiserver: { url: apiserver, ca: readFileSync(o.apiserverCa), tokenFile: o.tokenFile },
        log,
      });
      agent.start();
      log.info({ cluster: o.cluster, proxies: o.proxy }, 'portcullis agent started');
      const stop = (): void => {
        agent.stop();
        process.exit(0);
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      // Runs until signalled: the tunnels' sockets keep the process alive.
      return new Promise<void>(() => undefined);
    });
}

/** `portcullis cluster add`. */
function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description("the fleet's clusters");
  cluster
    .command('add')
    .description('Onboard a cluster behind its agent: write its Cluster into policies/ (a change for a pull request) and a bootstrap manifest for one `kubectl apply -f`')
    .argument('<name>', 'the cluster name')
    .option('--labels <k=v,...>', 'labels grants select it by, e.g. env=prod,region=eu-west', '')
    .requiredOption('--proxy <url...>', "every proxy replica's URL, as the agent dials them")
    .requiredOption('--registration-key <pem>', 'the registration signing key (Ed25519, PKCS#8 PEM) whose public half the proxies trust (agents.registrationKeyFiles)')
    .option('--proxy-ca <pem>', "the CA of the proxies' serving certificate, put into the manifest")
    .option('--policies <dir>', 'policy sources', 'policies')
    .option('--out <file>', 'where the bootstrap manifest goes (it holds the agent key: apply it, then delete it)', 'NAME-bootstrap.yaml')
    .option('--ttl <duration>', 'how long the registration credential is good for', '24h')
    .option('--image <ref>', 'the agent image', 'ghcr.io/portcullis-dev/portcullis:latest')
    .option('--replicas <n>', 'agent replicas', '2')
    .action(async (name: string, o: { labels: string; proxy: string[]; registrationKey: string; proxyCa?: string; policies: string; out: string; ttl: string; image: string; replicas: string }) => {
      // The compiler loads only for this command.
      const { addCluster } = await import('./cluster-add.ts');
      const r = await addCluster({
        name,
        labels: o.labels,
        proxies: o.proxy,
        registrationKeyFile: o.registrationKey,
        ...(o.proxyCa !== undefined ? { proxyCaFile: o.proxyCa } : {}),
        policiesDir: o.policies,
        out: o.out.replace('NAME', name),
        ttl: o.ttl,
        image: o.image,
        replicas: Number(o.replicas),
      });
      process.stdout.write(`${r.policyFile}: added cluster ${name} (commit it: a pull request, then compile)\n${r.manifest}: the bootstrap manifest (kubectl apply -f ${r.manifest} on the cluster; it holds the agent key, delete it afterwards)\nthe registration credential is good once, until ${r.expiresAt}\n`);
    });
}
