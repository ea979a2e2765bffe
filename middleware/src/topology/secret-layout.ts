/**
 * The layout of a topology Secret, one definition for its writers (topology/compile.ts for the Pulumi
 * package, operator/topology-secret.ts for the operator) and its reader (topology/source/secret-source.ts):
 * topology documents under keys ending in .yaml, .yml or .json, merged in key order; any other key is a file
 * (TLS material, `<rule>.ca.crt` and the like) written to the TLS directory beside them.
 */

/** What Kubernetes allows in a Secret data key, and so what may become a file name (or a TLS file's rule prefix). */
export const SECRET_DATA_KEY = /^[-._a-zA-Z0-9]+$/;

/** Keys that hold topology documents. */
export const DOCUMENT_KEY = /\.(ya?ml|json)$/i;
