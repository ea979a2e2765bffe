/**
 * The etcd backend open on a fresh real etcd, below any middleware: the rig of the backend-level etcd tests.
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { EtcdBackend } from '../../middleware/src/backends/etcd/etcd-backend.js';
import { parseEndpoint, type EtcdEndpoint } from '../../middleware/src/topology/endpoint.js';
import { Etcd } from './etcd.js';

export interface EtcdBackendRig {
  etcd: Etcd;
  backend: EtcdBackend;
  /** Closes the backend and removes the etcd. */
  stop(): Promise<void>;
}

export async function startEtcdBackend(): Promise<EtcdBackendRig> {
  const etcd = await Etcd.start();
  const backend = new EtcdBackend(parseEndpoint(etcd.clientUrl) as EtcdEndpoint, etcd.clientUrl, { queryTimeoutMs: 5000 });
  try {
    await backend.open();
  } catch (err) {
    await etcd.destroy();
    throw err;
  }
  return {
    etcd,
    backend,
    async stop() {
      await backend.close();
      await etcd.destroy();
    },
  };
}

/** The rig of a test suite: started before its first test, stopped after its last; `etcd` and `backend` are set from then on. */
export function etcdBackendForSuite(): Pick<EtcdBackendRig, 'etcd' | 'backend'> {
  let rig: EtcdBackendRig | undefined;
  before(async () => {
    rig = await startEtcdBackend();
  });
  after(async () => {
    await rig?.stop();
  });
  const started = () => rig ?? assert.fail('the etcd backend rig is used before its suite started it');
  return {
    get etcd() {
      return started().etcd;
    },
    get backend() {
      return started().backend;
    },
  };
}
