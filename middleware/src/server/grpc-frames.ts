/**
 * A gRPC framing rule grpc-js does not enforce: a message flagged compressed on a call whose encoding is
 * identity (or absent) is a protocol error. grpc-go, and so etcd, answers it with INTERNAL "grpc:
 * compressed flag set with identity or empty encoding"; grpc-js would read the bytes as if uncompressed.
 * grpc-js has no public hook below deserialisation, so this wraps its server call's decompression step
 * (build/src/server-interceptors.js of the pinned @grpc/grpc-js 1.x). If a grpc-js upgrade moves it,
 * `installFrameChecks` throws at start-up instead of silently dropping the check (test/contract covers it).
 */
import { createRequire } from 'node:module';
import { status } from '@grpc/grpc-js';

const require = createRequire(import.meta.url);

type Decompress = (this: unknown, message: Buffer, encoding: string) => Buffer | Promise<Buffer>;

let installed = false;

export function installFrameChecks(): void {
  if (installed) return;
  const mod = require('@grpc/grpc-js/build/src/server-interceptors.js') as { BaseServerInterceptingCall?: { prototype: { decompressMessage?: Decompress } } };
  const proto = mod.BaseServerInterceptingCall?.prototype;
  const original = proto?.decompressMessage;
  if (!proto || typeof original !== 'function') {
    throw new Error('@grpc/grpc-js changed: BaseServerInterceptingCall.decompressMessage is gone; update middleware/src/server/grpc-frames.ts');
  }
  proto.decompressMessage = function (this: unknown, message: Buffer, encoding: string) {
    // byte 0 of a gRPC frame is the compressed flag; grpc-js passes 'identity' for an absent encoding too
    if (message[0] === 1 && encoding === 'identity') {
      return Promise.reject({ code: status.INTERNAL, details: 'grpc: compressed flag set with identity or empty encoding' });
    }
    return original.call(this, message, encoding);
  };
  installed = true;
}
