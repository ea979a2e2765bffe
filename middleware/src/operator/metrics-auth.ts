/**
 * Authentication and authorization of `/metrics`, as controller-runtime's `filters.WithAuthenticationAndAuthorization`
 * does it: the caller's bearer token goes to a TokenReview (who is it?), then a SubjectAccessReview asks whether
 * that user may `get` the non-resource URL `/metrics` (granted by the `metrics-reader` ClusterRole). Answers are
 * cached briefly so a scrape every few seconds does not cost two API calls each.
 */
import type { Logger } from '../log.js';
import type { KubeClient } from './kube-client.js';

export type Authorizer = (authorization: string | undefined, path: string) => Promise<{ status: 200 | 401 | 403; message: string }>;

const CACHE_MS = 60_000;

interface TokenReview {
  status?: { authenticated?: boolean; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> }; error?: string };
}
interface SubjectAccessReview {
  status?: { allowed?: boolean; reason?: string };
}

export function metricsAuthorizer(client: KubeClient, log: Logger, now: () => number = Date.now): Authorizer {
  const cache = new Map<string, { until: number; result: { status: 200 | 401 | 403; message: string } }>();
  return async (authorization, path) => {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!m) return { status: 401, message: 'Unauthorized: a bearer token is required' };
    const token = m[1]!;
    const cached = cache.get(`${token}\0${path}`);
    if (cached && cached.until > now()) return cached.result;
    let result: { status: 200 | 401 | 403; message: string };
    try {
      const review = await client.request<TokenReview>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } },
      });
      const user = review.status?.user;
      if (!review.status?.authenticated || !user?.username) {
        result = { status: 401, message: 'Unauthorized: the token was not accepted' };
      } else {
        const access = await client.request<SubjectAccessReview>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SubjectAccessReview',
            spec: { user: user.username, uid: user.uid, groups: user.groups, extra: user.extra, nonResourceAttributes: { path, verb: 'get' } },
          },
        });
        result = access.status?.allowed
          ? { status: 200, message: 'ok' }
          : { status: 403, message: `Forbidden: user "${user.username}" may not get ${path} (bind the metrics-reader ClusterRole)` };
      }
    } catch (e) {
      log.warn('cannot review a /metrics caller', { error: (e as Error).message });
      return { status: 401, message: 'Unauthorized: the token could not be reviewed' };
    }
    if (cache.size > 1000) cache.clear();
    cache.set(`${token}\0${path}`, { until: now() + CACHE_MS, result });
    return result;
  };
}
