// Validates a rendered ikelb manifest (helm template output, several YAML documents) offline:
// every object against the Kubernetes schemas (kubernetes-models), then what matters for ikelb,
// against the expectations given as JSON. Writes the agent's config (the ConfigMap's
// ikelb.json) to CONFIG_OUT for `ikelbd --check`. Exits 1 with every failure listed.
//
//   IKELB_NODE_MODULES=DIR node check_manifest.mjs MANIFEST.yaml EXPECT.json CONFIG_OUT
//
// EXPECT: {"privileged": bool, "bpffs": host path, "pin_dir": path, "socket_dir": host path,
//          "health_port": n, "teardown_on_stop": bool, "checksum": bool}
// DIR is the tools cache's node_modules (tests/deploy/tools.sh); kubernetes-models is an ES
// module package, loaded here by file path.
import fs from 'node:fs';
import crypto from 'node:crypto';
import path from 'node:path';
import {createRequire} from 'node:module';

const modules = process.env.IKELB_NODE_MODULES;
if (!modules) throw new Error('IKELB_NODE_MODULES is not set');
const yaml = createRequire(path.join(modules, 'x.js'))('js-yaml');

const [manifestPath, expectPath, configOut] = process.argv.slice(2);
const expect = JSON.parse(fs.readFileSync(expectPath, 'utf8'));
const text = fs.readFileSync(manifestPath, 'utf8');
const docs = yaml.loadAll(text).filter((d) => d);
const failures = [];
const fail = (what) => failures.push(what);
const check = (cond, what) => { if (!cond) fail(what); };
// JSON with sorted keys: equal objects compare equal whatever their key order.
const canon = (v) => JSON.stringify(v, (k, x) => (x && typeof x === 'object' && !Array.isArray(x)
  ? Object.fromEntries(Object.keys(x).sort().map((key) => [key, x[key]])) : x));
const eq = (got, want, what) => check(canon(got) === canon(want),
  `${what}: got ${canon(got)}, want ${canon(want)}`);

// 1. Schemas. Only the kinds the chart renders; anything else is a failure too.
const models = {
  'v1/ConfigMap': 'kubernetes-models/v1/ConfigMap.js',
  'apps/v1/DaemonSet': 'kubernetes-models/apps/v1/DaemonSet.js',
};
for (const d of docs) {
  const key = `${d.apiVersion}/${d.kind}`;
  if (!models[key]) { fail(`unexpected object ${key}`); continue; }
  const module = await import(path.join(modules, models[key]));
  const Model = module[d.kind];
  try {
    new Model(d).validate();
  } catch (e) {
    fail(`${key} ${d.metadata && d.metadata.name}: schema: ${e.message}`);
  }
}

// 2. What ikelb needs.
const ds = docs.find((d) => d.kind === 'DaemonSet');
const cm = docs.find((d) => d.kind === 'ConfigMap');
if (!ds || !cm) {
  fail('want one DaemonSet and one ConfigMap');
} else {
  const pod = ds.spec.template.spec;
  const c = pod.containers[0];
  eq(pod.containers.length, 1, 'containers');
  eq(pod.hostNetwork, true, 'hostNetwork');
  eq(pod.priorityClassName, 'system-node-critical', 'priorityClassName');
  eq(pod.automountServiceAccountToken, false, 'automountServiceAccountToken');
  eq(ds.spec.updateStrategy, {rollingUpdate: {maxSurge: 0, maxUnavailable: 1}, type: 'RollingUpdate'},
    'updateStrategy');
  eq(c.command, ['/usr/sbin/ikelbd'], 'command');
  eq(c.args, ['--config', '/etc/ikelb/ikelb.json', '--watch-config']
    .concat(expect.teardown_on_stop ? ['--teardown-on-stop'] : []), 'args');

  const sc = c.securityContext;
  eq(sc.seccompProfile, {type: 'Unconfined'}, 'seccompProfile (explicit: bpf() needs it)');
  eq(sc.readOnlyRootFilesystem, true, 'readOnlyRootFilesystem');
  eq(sc.privileged, expect.privileged, 'privileged');
  if (expect.privileged) {
    check(sc.capabilities === undefined, 'a privileged container lists no capabilities');
    check(sc.allowPrivilegeEscalation !== false, 'privileged needs allowPrivilegeEscalation');
  } else {
    eq(sc.capabilities, {add: ['BPF', 'NET_ADMIN', 'PERFMON'], drop: ['ALL']}, 'capabilities');
    eq(sc.allowPrivilegeEscalation, false, 'allowPrivilegeEscalation');
  }

  for (const [probe, path] of [['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']]) {
    const p = c[probe];
    check(p && p.httpGet, `${probe}: httpGet`);
    if (p && p.httpGet)
      eq(p.httpGet, {host: '127.0.0.1', path, port: expect.health_port}, `${probe}.httpGet`);
  }

  const mounts = Object.fromEntries(c.volumeMounts.map((m) => [m.name, m]));
  const volumes = Object.fromEntries(pod.volumes.map((v) => [v.name, v]));
  check(c.volumeMounts.every((m) => m.subPath === undefined && m.subPathExpr === undefined),
    'no subPath: ConfigMap updates must reach the pod');
  eq(mounts.bpffs, {mountPath: expect.bpffs, mountPropagation: 'HostToContainer', name: 'bpffs'},
    'bpffs mount');
  eq(volumes.bpffs, {hostPath: {path: expect.bpffs, type: 'DirectoryOrCreate'}, name: 'bpffs'},
    'bpffs volume');
  eq(mounts.run, {mountPath: '/run/ikelb', name: 'run'}, 'admin socket mount');
  eq(volumes.run, {hostPath: {path: expect.socket_dir, type: 'DirectoryOrCreate'}, name: 'run'},
    'admin socket volume');
  eq(mounts.config, {mountPath: '/etc/ikelb', name: 'config', readOnly: true}, 'config mount');
  eq(volumes.config, {configMap: {name: cm.metadata.name}, name: 'config'}, 'config volume');

  const config = JSON.parse(cm.data['ikelb.json']);
  eq(config.bpffs, expect.pin_dir, 'config bpffs');
  eq(config.admin, {socket: '/run/ikelb/ikelb.sock'}, 'config admin');
  eq(config.health, {listen: `127.0.0.1:${expect.health_port}`}, 'config health');
  fs.writeFileSync(configOut, cm.data['ikelb.json']);

  // The checksum is that of the rendered ConfigMap (Helm hashes the template's output).
  const annotations = ds.spec.template.metadata.annotations || {};
  if (expect.checksum) {
    const source = text.split(/^---\n/m).find((part) => /^kind: ConfigMap$/m.test(part));
    const rendered = source.replace(/^# Source: .*\n/m, '');
    const want = crypto.createHash('sha256').update(rendered).digest('hex');
    eq(annotations['checksum/config'], want, 'checksum/config');
  } else {
    check(annotations['checksum/config'] === undefined, 'no checksum/config when not rolling');
  }
}

if (failures.length) {
  for (const f of failures) console.error(`${manifestPath}: ${f}`);
  process.exit(1);
}
console.log(`${manifestPath}: ${docs.length} objects valid, ikelb checks passed`);
