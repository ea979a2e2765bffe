/**
 * One HTTPS request to a kube-apiserver with a bearer token: the one request helper of the tests
 * (`KubeApiServer.request`, the Pulumi tests' cluster stand-in) and of the bench's kube rows.
 */
import https from 'node:https';

/** Where a kube-apiserver answers and how to authenticate to it. */
export interface KubeAccess {
  /** https://127.0.0.1:PORT */
  url: string;
  token: string;
  /** PEM of the CA that signed the serving certificate. */
  caPem: string;
}

export interface KubeRequestOptions {
  /** A JSON value (sent as JSON) or a string sent as is. */
  body?: unknown;
  /** Content type of `body`; default application/json (patches pass theirs). */
  contentType?: string;
  /** A keep-alive agent for request loops (the bench); default: a new connection per request. */
  agent?: https.Agent;
  /** Bound on the whole request; default 60 s. */
  timeoutMs?: number;
}

export interface KubeResponse {
  status: number;
  /** The parsed JSON body, or its text when it is not JSON. */
  body: any;
}

/** Sends one request; resolves with any HTTP status (the caller judges it), rejects on transport errors. */
export function kubeRequest(access: KubeAccess, method: string, urlPath: string, options: KubeRequestOptions = {}): Promise<KubeResponse> {
  const { body, contentType = 'application/json', agent, timeoutMs = 60_000 } = options;
  return new Promise((resolve, reject) => {
    const req = https.request(
      `${access.url}${urlPath}`,
      {
        method,
        ca: access.caPem,
        ...(agent ? { agent } : {}),
        headers: {
          authorization: `Bearer ${access.token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': contentType } : {}),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            /* not JSON: keep the text */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${access.url}${urlPath}: no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    req.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
  });
}

/** {@link kubeRequest} that resolves with the body of a 2xx answer and rejects on any other, quoting it. */
export async function kubeCall(access: KubeAccess, method: string, urlPath: string, options: KubeRequestOptions = {}): Promise<any> {
  const r = await kubeRequest(access, method, urlPath, options);
  if (r.status < 200 || r.status >= 300) {
    const text = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
    throw new Error(`${method} ${urlPath}: HTTP ${r.status} ${text.slice(0, 300)}`);
  }
  return r.body;
}
