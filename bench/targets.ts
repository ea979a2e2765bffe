/** Starts any bench target by name: the single servers (servers.ts) and the layered ones (layered.ts). */
import { startRouted, startTwoLayer } from './layered.js';
import { startEtcd, startKine, startMiddleware, type BenchServer, type MiddlewareLaunch, type TargetName } from './servers.js';

export function startTarget(target: TargetName, launch?: MiddlewareLaunch): Promise<BenchServer> {
  switch (target) {
    case 'etcd':
    case 'etcd-3.6':
      return startEtcd(target);
    case 'kine-sqlite':
      return startKine('sqlite');
    case 'kine-postgres':
      return startKine('postgres');
    case 'mw-sqlite':
      return startMiddleware('sqlite', launch);
    case 'mw-postgres':
      return startMiddleware('postgres', launch);
    case 'mw-mysql':
      return startMiddleware('mysql', launch);
    case 'mw-routed':
      return startRouted(launch);
    case 'mw-two-layer':
      return startTwoLayer(launch);
  }
}
