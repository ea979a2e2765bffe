/**
 * The process's Prometheus registry. Every module registers its metrics here (names prefixed `harikube_`);
 * the HTTP endpoint in `server/http.ts` serves it on `/metrics`.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry });
