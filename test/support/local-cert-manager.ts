/**
 * What cert-manager would issue for a stack's rendered Certificates, made with openssl: the CA Certificate
 * (issued by a self-signed Issuer) becomes a self-signed CA, and every Certificate of an Issuer with `spec.ca`
 * is signed by the CA in that Issuer's Secret, with an ECDSA P-256 key and the usages it declares. Each
 * Certificate's Secret holds `tls.crt`, `tls.key` and `ca.crt`, as cert-manager writes them.
 *
 * One substitution: server certificates name 127.0.0.1 and localhost instead of the Service names in
 * `dnsNames`, because the tests reach the servers on loopback.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** A rendered cert-manager object (`plain` of the recorded resource). */
export interface CertManagerObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: Record<string, any>;
}

const USAGES: Record<string, { keyUsage?: string; extendedKeyUsage?: string }> = {
  'server auth': { extendedKeyUsage: 'serverAuth' },
  'client auth': { extendedKeyUsage: 'clientAuth' },
  'digital signature': { keyUsage: 'digitalSignature' },
  'key encipherment': { keyUsage: 'keyEncipherment' },
};

/** Issues every Certificate in `dir`; returns the Secrets cert-manager would write, by Secret name. */
export function issueCertificates(dir: string, objects: CertManagerObject[]): Map<string, Record<string, Buffer>> {
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const f = (name: string) => path.join(dir, name);
  const issuers = new Map(objects.filter((o) => o.kind === 'Issuer').map((o) => [o.metadata.name, o.spec]));
  const certificates = objects.filter((o) => o.kind === 'Certificate');
  const secrets = new Map<string, Record<string, Buffer>>();
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

  for (const c of certificates.filter((c) => c.spec.isCA)) {
    const issuer = issuers.get(c.spec.issuerRef.name);
    if (!issuer?.selfSigned) throw new Error(`Certificate ${c.metadata.name}: a CA issued by "${c.spec.issuerRef.name}", which is not a self-signed Issuer of the stack`);
    const name = c.spec.secretName as string;
    openssl(['req', '-x509', ...newKey, '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`), '-days', '2', '-subj', `/CN=${c.spec.commonName}`]);
    const crt = readFileSync(f(`${name}.crt`));
    secrets.set(name, { 'tls.crt': crt, 'tls.key': readFileSync(f(`${name}.key`)), 'ca.crt': crt });
  }
  for (const c of certificates.filter((c) => !c.spec.isCA)) {
    const issuer = issuers.get(c.spec.issuerRef.name);
    const ca = issuer?.ca?.secretName ? secrets.get(issuer.ca.secretName) : undefined;
    if (!ca) throw new Error(`Certificate ${c.metadata.name}: issuer "${c.spec.issuerRef.name}" is not a CA Issuer whose CA the stack issues`);
    const name = c.spec.secretName as string;
    const usages = (c.spec.usages as string[]).map((u) => {
      const known = USAGES[u];
      if (!known) throw new Error(`Certificate ${c.metadata.name}: usage "${u}" is not known here; add it to USAGES`);
      return known;
    });
    const keyUsage = usages.flatMap((u) => (u.keyUsage ? [u.keyUsage] : []));
    const extendedKeyUsage = usages.flatMap((u) => (u.extendedKeyUsage ? [u.extendedKeyUsage] : []));
    const ext = [
      ...(keyUsage.length ? [`keyUsage=critical,${keyUsage.join(',')}`] : []),
      ...(extendedKeyUsage.length ? [`extendedKeyUsage=${extendedKeyUsage.join(',')}`] : []),
      ...(extendedKeyUsage.includes('serverAuth') ? ['subjectAltName=IP:127.0.0.1,DNS:localhost'] : []),
    ];
    writeFileSync(f(`${name}.ext`), ext.join('\n') + '\n');
    writeFileSync(f(`${name}-ca.crt`), ca['tls.crt']!);
    writeFileSync(f(`${name}-ca.key`), ca['tls.key']!);
    openssl(['req', ...newKey, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${c.spec.commonName}`]);
    openssl(['x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${name}-ca.crt`), '-CAkey', f(`${name}-ca.key`), '-CAcreateserial', '-out', f(`${name}.crt`), '-days', '2', '-extfile', f(`${name}.ext`)]);
    secrets.set(name, { 'tls.crt': readFileSync(f(`${name}.crt`)), 'tls.key': readFileSync(f(`${name}.key`)), 'ca.crt': ca['tls.crt']! });
  }
  return secrets;
}
