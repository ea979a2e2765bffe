/**
 * A middleware over a scratch SQLite whose one topology rule sends the keys matching `regexp` to a real etcd
 * (real processes): the rig of the etcd-backend tests.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Etcd } from './etcd.js';
import { EtcdClient } from './grpc.js';
import { Middleware } from './middleware.js';
import { createScratchStore, type ScratchStore } from './scratch-store.js';

export interface EtcdRuleRig {
  etcd: Etcd;
  sqlite: ScratchStore;
  mw: Middleware;
  client: EtcdClient;
  /** Stops and removes everything (safe after a failed start). */
  stop(): Promise<void>;
}

export async function startEtcdRule(regexp: string): Promise<EtcdRuleRig> {
  const etcd = await Etcd.start();
  const sqlite = await createScratchStore('sqlite');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hk-etcd-rule-'));
  const topology = path.join(dir, 'topology.yaml');
  await writeFile(topology, `backends:\n- name: etcd\n  endpoint: ${etcd.clientUrl}\n  regexp: { key: ${JSON.stringify(regexp)} }\n`);
  const mw = await Middleware.start({ endpoint: sqlite.endpoint, compactInterval: '0', extraArgs: ['--topology-config', `file://${topology}`, '--query-timeout', '3s'] });
  const client = new EtcdClient(mw.address);
  return {
    etcd,
    sqlite,
    mw,
    client,
    async stop() {
      client.close();
      await mw.stop();
      await etcd.destroy();
      await sqlite.dispose();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
