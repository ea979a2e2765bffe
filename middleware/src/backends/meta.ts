/**
 * Names of the meta values the middleware keeps in its default backend (and, for `owner` and
 * `schemaVersion`, in every backend): every name is here, nowhere else.
 */
export const META = {
  /** SQL backends: the newest schema migration applied (backends/sql/schema.ts). */
  schemaVersion: 'schema_version',
  /** Every rule backend: the cluster ID of the middleware that owns its revisions (one revision space). */
  owner: 'owner_cluster_id',
  /**
   * A child layer: the cluster ID of the parent middleware that claimed it, whose revisions it stores
   * (mvcc/child-layer.ts). Set once; a child serves one parent.
   */
  parent: 'parent_cluster_id',
  /** The topology in effect (JSON), so a restart routes as before it (router/routed-backend.ts). */
  topology: 'topology',
  /** Leader election on a shared default backend: `<term>/<identity>` of the holder, and when it last renewed. */
  leader: 'leader',
  leaderRenewed: 'leader_renewed',
  /** Standby replicas by pod name, with their pod template and first appearance (leader/candidates.ts). */
  leaderCandidates: 'leader_candidates',
  /** The standby a leader handed the lease to in a rolling update. */
  leaderSuccessor: 'leader_successor',
  compactRevision: 'compact_revision',
  /** Highest revision that may have existed: compaction and reverted writes can delete the newest rows. */
  revisionHighWater: 'revision_hwm',
  clusterId: 'cluster_id',
  memberId: 'member_id',
  /** Written by the readiness probe after a failed write batch (see `Store.ready`). */
  writeProbe: 'write_probe',
  /**
   * A write spanning several databases that is between its commits: `{"from":F,"to":T,"backends":[names]}`
   * (router/routed-txn.ts). Present at start or after a failure: its rows are reverted everywhere.
   */
  writeIntent: 'write_intent',
  /**
   * Backends that may hold keys the topology in effect routes elsewhere, being moved by the online migration
   * (router/migration-state.ts has the format). Written with the topology that started them.
   */
  migrations: 'migrations',
} as const;

/** A revision stored as a meta value (decimal text); 0 when unset. */
export function metaRevision(meta: Buffer | undefined): number {
  return meta && meta.length > 0 ? Number(meta.toString()) : 0;
}
