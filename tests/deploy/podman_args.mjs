// Turns the DaemonSet that the chart renders into the `podman run` arguments that run its
// container the same way (host network, capabilities, seccomp, read-only root, user, mounts,
// command and args), so the container test runs exactly the chart's spec. A field of the pod or
// container spec this script does not know is an error: the chart cannot grow a setting the
// test silently ignores.
//
//   IKELB_NODE_MODULES=DIR node podman_args.mjs MANIFEST.yaml CONFIGMAP_DIR OUT.json
//
// OUT.json: {"image", "run_args": [...] (before the image), "args": [...] (after it),
//            "create_dirs": hostPath directories of type DirectoryOrCreate (the kubelet creates
//            them, podman does not), "config": the ConfigMap's ikelb.json, "probes": {"liveness"|"readiness":
//            {"host", "port", "path"}}}. CONFIGMAP_DIR stands in for the ConfigMap volume.
import fs from 'node:fs';
import path from 'node:path';
import {createRequire} from 'node:module';

const yaml = createRequire(path.join(process.env.IKELB_NODE_MODULES, 'x.js'))('js-yaml');
const [manifestPath, configMapDir, outPath] = process.argv.slice(2);
const docs = yaml.loadAll(fs.readFileSync(manifestPath, 'utf8')).filter((d) => d);
const ds = docs.find((d) => d.kind === 'DaemonSet');
const cm = docs.find((d) => d.kind === 'ConfigMap');
const pod = ds.spec.template.spec;
const known = (obj, keys, what) => {
  for (const k of Object.keys(obj))
    if (!keys.includes(k)) throw new Error(`${what}.${k}: not mapped to podman`);
};
known(pod, ['hostNetwork', 'dnsPolicy', 'automountServiceAccountToken', 'priorityClassName',
  'terminationGracePeriodSeconds', 'nodeSelector', 'tolerations', 'affinity',
  'imagePullSecrets', 'containers', 'volumes'], 'pod');
if (pod.containers.length !== 1) throw new Error('one container expected');
const c = pod.containers[0];
known(c, ['name', 'image', 'imagePullPolicy', 'command', 'args', 'securityContext',
  'livenessProbe', 'readinessProbe', 'resources', 'volumeMounts'], 'container');

const run = [];
if (pod.hostNetwork) run.push('--network', 'host');
const sc = c.securityContext || {};
known(sc, ['privileged', 'allowPrivilegeEscalation', 'capabilities', 'runAsUser',
  'readOnlyRootFilesystem', 'seccompProfile'], 'securityContext');
if (sc.privileged) run.push('--privileged');
for (const cap of (sc.capabilities && sc.capabilities.drop) || [])
  run.push('--cap-drop', cap === 'ALL' ? 'all' : cap);
for (const cap of (sc.capabilities && sc.capabilities.add) || []) run.push('--cap-add', cap);
if (sc.allowPrivilegeEscalation === false) run.push('--security-opt', 'no-new-privileges');
if (sc.seccompProfile) {
  const t = sc.seccompProfile.type;
  if (t === 'Unconfined') run.push('--security-opt', 'seccomp=unconfined');
  else if (t === 'Localhost') run.push('--security-opt', `seccomp=${sc.seccompProfile.localhostProfile}`);
  else if (t !== 'RuntimeDefault') throw new Error(`seccompProfile ${t}`);
}
if (sc.readOnlyRootFilesystem) run.push('--read-only');
if (sc.runAsUser !== undefined) run.push('--user', String(sc.runAsUser));
const memory = c.resources && c.resources.limits && c.resources.limits.memory;
if (memory) run.push('--memory', memory.replace(/Mi$/, 'm').replace(/Gi$/, 'g'));

const volumes = Object.fromEntries(pod.volumes.map((v) => [v.name, v]));
const createDirs = [];
const propagation = {HostToContainer: 'rslave', Bidirectional: 'rshared', None: 'private'};
for (const m of c.volumeMounts) {
  known(m, ['name', 'mountPath', 'mountPropagation', 'readOnly'], `volumeMounts ${m.name}`);
  const v = volumes[m.name];
  let source;
  if (v.hostPath) {
    source = v.hostPath.path;
    if (v.hostPath.type === 'DirectoryOrCreate') createDirs.push(source);
    else if (v.hostPath.type !== 'Directory') throw new Error(`hostPath type ${v.hostPath.type}`);
  }
  else if (v.configMap) source = configMapDir;
  else throw new Error(`volume ${m.name}: only hostPath and configMap are mapped`);
  const opts = [m.readOnly ? 'ro' : 'rw'];
  if (m.mountPropagation) opts.push(propagation[m.mountPropagation]);
  run.push('-v', `${source}:${m.mountPath}:${opts.join(',')}`);
}
if (c.command) run.push('--entrypoint', JSON.stringify(c.command));

const probe = (p) => ({host: p.httpGet.host, port: p.httpGet.port, path: p.httpGet.path});
fs.writeFileSync(outPath, JSON.stringify({
  image: c.image,
  run_args: run,
  args: c.args || [],
  create_dirs: createDirs,
  config: cm.data['ikelb.json'],
  probes: {liveness: probe(c.livenessProbe), readiness: probe(c.readinessProbe)},
}, null, 2));
