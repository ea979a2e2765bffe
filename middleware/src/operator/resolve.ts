/**
 * From a TopologyConfig's spec to the rules that go into the Secret: validate the spec, open sealed endpoints
 * with the keys of its decrypt Secret, validate the plaintext rules as the middleware will. Failures come back
 * as a reason for the resource's status: they name the rule and field and never show an endpoint that was
 * sealed (not even redacted) nor a password.
 */
import type { BackendRule, TopologyConfigSpec } from '../topology/schema.js';
import { DEFAULT_TARGET_SECRET } from '../topology/schema.js';
import { redactEndpoint } from '../topology/endpoint.js';
import { formatIssue, validateTopology } from '../topology/validate.js';
import { validateTopologyConfigResource } from '../topology/topologyconfig.js';
import { DecryptError, openEndpoint, type NamedKey } from './decrypt.js';

/** Keys of a decrypt Secret `namespace/name`; throws a message fit for status when there are none. */
export type KeyLookup = (secretRef: string) => Promise<NamedKey[]>;

export class KeyLookupError extends Error {
  constructor(
    message: string,
    /** True when the cause may go away by itself (Secret not created yet, API error): try again later. */
    readonly transient: boolean,
  ) {
    super(message);
    this.name = 'KeyLookupError';
  }
}

export type Resolved = { ok: true; rules: BackendRule[] } | { ok: false; failure: string; transient: boolean };

/** The Secret a spec writes to (`targetSecret`, defaulted as the CRD does). */
export function targetOf(spec: Partial<TopologyConfigSpec> | undefined): string {
  return typeof spec?.targetSecret === 'string' && spec.targetSecret ? spec.targetSecret : DEFAULT_TARGET_SECRET;
}

const MAX_ISSUES = 5;

function joinIssues(messages: string[]): string {
  const shown = messages.slice(0, MAX_ISSUES).join('; ');
  return messages.length > MAX_ISSUES ? `${shown}; and ${messages.length - MAX_ISSUES} more` : shown;
}

export async function resolveRules(spec: unknown, keysFor: KeyLookup): Promise<Resolved> {
  const checked = validateTopologyConfigResource(spec);
  if (!checked.ok) return { ok: false, failure: joinIssues(checked.issues.map(formatIssue)), transient: false };
  const valid = checked.value;
  if (!valid.endpointDecryptSecret) {
    return { ok: true, rules: valid.backends };
  }

  let keys: NamedKey[];
  try {
    keys = await keysFor(valid.endpointDecryptSecret);
  } catch (e) {
    const transient = e instanceof KeyLookupError ? e.transient : !(e instanceof DecryptError);
    return { ok: false, failure: `endpointDecryptSecret ${valid.endpointDecryptSecret}: ${(e as Error).message}`, transient };
  }
  const problems: string[] = [];
  const plaintexts: string[] = [];
  const rules = valid.backends.map((rule, index) => {
    try {
      const { plaintext } = openEndpoint(rule.endpoint, keys);
      plaintexts.push(plaintext);
      return { ...rule, endpoint: plaintext };
    } catch (e) {
      const message = e instanceof DecryptError ? e.message : 'cannot be decrypted';
      problems.push(formatIssue({ index, rule: rule.name, field: 'endpoint', message }));
      return rule;
    }
  });
  if (problems.length) return { ok: false, failure: joinIssues(problems), transient: false };

  const result = validateTopology({ backends: rules });
  if (!result.ok) {
    // Messages about a sealed endpoint may quote it (redacted); a sealed endpoint is secret as a whole.
    const hide = (text: string) =>
      plaintexts.reduce((t, p) => t.split(p).join('<sealed endpoint>').split(redactEndpoint(p)).join('<sealed endpoint>'), text);
    return { ok: false, failure: joinIssues(result.issues.map((i) => hide(formatIssue(i)))), transient: false };
  }
  return { ok: true, rules: result.value.backends };
}
