// The browser shell's line reader (SECURITY rule 30): table-driven, valid and invalid lines.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandLine } from '../../console/terminal/command-line.ts';

describe('the browser shell line reader', () => {
  const valid: [string, string[]][] = [
    ['kubectl get pods', ['kubectl', 'get', 'pods']],
    ['  kubectl   get pods -n web-1  ', ['kubectl', 'get', 'pods', '-n', 'web-1']],
    ['kubectl exec -it web-1 -n shop -- echo hi', ['kubectl', 'exec', '-it', 'web-1', '-n', 'shop', '--', 'echo', 'hi']],
    ['kubectl get pods -o=custom-columns=NAME:.metadata.name', ['kubectl', 'get', 'pods', '-o=custom-columns=NAME:.metadata.name']],
    ['kubectl --context=dev get deploy,svc -l app=web', ['kubectl', '--context=dev', 'get', 'deploy,svc', '-l', 'app=web']],
  ];
  for (const [line, argv] of valid) {
    it(`GIVEN ${JSON.stringify(line)} THEN it runs as ${JSON.stringify(argv)}`, () => {
      assert.deepEqual(parseCommandLine(line), { ok: true, argv });
    });
  }

  const invalid: [string, RegExp][] = [
    ['sh', /only kubectl runs here, not sh/],
    ['/usr/bin/kubectl get pods', /only kubectl runs here/],
    ['kubectl-foo', /only kubectl/],
    ['kubectl get pods; id', /; not allowed/],
    ['kubectl get pods && id', /& not allowed/],
    ['kubectl get pods | sh', /\| not allowed/],
    ['kubectl get pods > /etc/x', /> not allowed/],
    ['kubectl apply -f - < /etc/passwd', /< not allowed/],
    ['kubectl get pods $(id)', /\$ \( \) not allowed/],
    ['kubectl get pods `id`', /` not allowed/],
    ["kubectl get pods 'a b'", /' not allowed/],
    ['kubectl get pods "a"', /" not allowed/],
    ['kubectl get pods ~root', /~ not allowed/],
    ['kubectl get pods *', /\* not allowed/],
    ['kubectl get pods\nid', /U\+000a not allowed/],
    ['kubectl get pods\u0000', /U\+0000 not allowed/],
    ['kubectl get pods\\ x', /\\ not allowed/],
    ['kubectl --kubeconfig=/root/.kube/config get pods', /--kubeconfig/],
    ['kubectl --kubeconfig /root/.kube/config get pods', /--kubeconfig/],
    ['kubectl --token=abc get pods', /--token/],
    ['kubectl -s https://10.0.0.1 get pods', /-s/],
    ['kubectl --server=https://10.0.0.1 get pods', /--server/],
    ['kubectl --insecure-skip-tls-verify get pods', /--insecure-skip-tls-verify/],
    ['kubectl --as=system:admin get pods', /--as/],
    ['kubectl --user=admin get pods', /--user/],
    ['kubectl -shttp://10.0.0.1 get pods', /sets -s/],
    ['kubectl get pods -As http://10.0.0.1', /sets -s/],
    ['kubectl get pods -nsecret', /sets -s/],
    ['kubectl proxy --port=8001', /would listen/],
    ['kubectl config set clusters.dev.server http://10.0.0.1', /kubectl config set/],
    ['kubectl config set-credentials me --exec-command=sh', /not changed/],
    ['kubectl -n shop port-forward pod/web 8080:80', /would listen/],
    [`kubectl ${'x'.repeat(2001)}`, /too long/],
  ];
  for (const [line, why] of invalid) {
    it(`GIVEN ${JSON.stringify(line.slice(0, 60))} THEN it is refused (${why.source})`, () => {
      const r = parseCommandLine(line);
      assert.equal(r.ok, false);
      assert.match(r.ok ? '' : r.error, why);
    });
  }

  it('GIVEN an empty line THEN nothing runs', () => {
    assert.deepEqual(parseCommandLine('   '), { ok: true, argv: [], empty: true });
  });
});
