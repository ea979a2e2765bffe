/**
 * Validating rules whose endpoints cannot be read: Pulumi inputs not known yet at `pulumi preview`, or the
 * sealed endpoints of a TopologyConfig (opened only by the operator, in the cluster). Each such endpoint is
 * replaced by a stand-in SQLite endpoint, so that everything else about the rules (names, match blocks,
 * regexps, durations) is checked exactly as the middleware will check it; the real endpoints are checked
 * where they can be read.
 */

/**
 * `rules` with each endpoint replaced by a stand-in. `identity` says which endpoints are the same: rules
 * whose identities are equal get the same stand-in, so the duplicate-endpoint check still sees them (pass the
 * index when nothing can be compared); `undefined` leaves the rule as it is (the validator then reports
 * what is wrong with it). Each stand-in names the first rule with that identity.
 */
export function withStandInEndpoints<R>(rules: readonly R[], identity: (rule: R, index: number) => unknown): R[] {
  const firstIndexOf = new Map<unknown, number>();
  return rules.map((rule, index) => {
    const id = identity(rule, index);
    if (id === undefined) return rule;
    if (!firstIndexOf.has(id)) firstIndexOf.set(id, index);
    return { ...rule, endpoint: `sqlite://stand-in-endpoint-${firstIndexOf.get(id)}.db` };
  });
}
