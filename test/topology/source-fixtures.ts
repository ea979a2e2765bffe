/** Topology documents the source tests deliver: prefix rules on SQLite files named after the rule. */
import { stringify } from 'yaml';
import type { TopologyUpdate } from '../../middleware/src/topology/source/index.js';

export const rule = (name: string) => ({ name, endpoint: `sqlite://./db/${name}.db`, prefix: { prefix: name } });
export const doc = (...names: string[]) => stringify({ backends: names.map(rule) });
export const names = (u: TopologyUpdate) => u.document.backends.map((b) => b.name);
