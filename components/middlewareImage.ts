/**
 * `MiddlewareImage`: builds the HariKube image from `middleware/Dockerfile` with `@pulumi/docker-build` and
 * exposes `ref` = `<repository>@sha256:<digest>`, so workloads are deployed by digest (a rebuilt tag can never
 * silently change what runs, and every new build rolls the pods).
 *
 * `@pulumi/docker-build` is an optional dependency, imported only when an image is built: stacks that deploy
 * a prebuilt image reference do not need it (nor a Docker daemon).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';

type DockerBuildModule = typeof import('@pulumi/docker-build');

export interface MiddlewareImageArgs {
  /** Repository to push to, without tag (e.g. `registry.example.com/platform/harikube`). */
  repository: pulumi.Input<string>;
  /** Tag pushed alongside the digest; default `latest`. The deployment always uses the digest. */
  tag?: pulumi.Input<string>;
  /** Build context; default the repository root (the Dockerfile copies `package*.json`, `middleware/`, `bin/`). */
  context?: string;
  /** Dockerfile; default `middleware/Dockerfile` under the context. */
  dockerfile?: string;
  /** Target platforms; default `linux/amd64`. */
  platforms?: string[];
  /** Registry credentials; when omitted, the local Docker credential store is used. */
  registry?: { address: pulumi.Input<string>; username?: pulumi.Input<string>; password?: pulumi.Input<string> };
  /** Build during `pulumi preview` too (slow; catches Dockerfile errors earlier); default false. */
  buildOnPreview?: boolean;
  /** How the optional dependency is loaded (tests inject a failing loader). */
  loader?: () => Promise<unknown>;
}

/** How a component gets its image: a prebuilt reference, or a build. */
export type ImageSource = pulumi.Input<string> | { build: MiddlewareImageArgs };

/** Loads `@pulumi/docker-build`, or fails saying what to do instead. */
export async function loadDockerBuild(loader: () => Promise<unknown> = () => import('@pulumi/docker-build')): Promise<DockerBuildModule> {
  let mod: unknown;
  try {
    mod = await loader();
  } catch (e) {
    throw new Error(
      'building the HariKube image needs the optional dependency @pulumi/docker-build, which is not installed ' +
        `(${(e as Error).message}). Install it (npm install @pulumi/docker-build) or set a prebuilt image reference instead of a build.`,
    );
  }
  const m = mod as Partial<DockerBuildModule> & { default?: Partial<DockerBuildModule> };
  const resolved = typeof m.Image === 'function' ? m : m.default;
  if (!resolved || typeof resolved.Image !== 'function') throw new Error('@pulumi/docker-build loaded but has no Image resource; check its version');
  return resolved as DockerBuildModule;
}

/** The repository root: the nearest ancestor of this file holding `middleware/Dockerfile` (works from `dist/` too). */
export function repositoryRoot(from = path.dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'middleware', 'Dockerfile'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(from, '..');
  }
}

export class MiddlewareImage extends pulumi.ComponentResource {
  /** `<repository>@sha256:<digest>` of the pushed build. */
  public readonly ref: pulumi.Output<string>;

  constructor(name: string, args: MiddlewareImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super('harikube:index:MiddlewareImage', name, {}, opts);
    const context = args.context ?? repositoryRoot();
    const built = loadDockerBuild(args.loader).then(
      (docker) =>
        new docker.Image(
          `${name}-build`,
          {
            context: { location: context },
            dockerfile: { location: args.dockerfile ?? path.join(context, 'middleware', 'Dockerfile') },
            platforms: (args.platforms ?? ['linux/amd64']) as DockerBuildModule['Platform'][keyof DockerBuildModule['Platform']][],
            tags: [pulumi.interpolate`${args.repository}:${args.tag ?? 'latest'}`],
            push: true,
            buildOnPreview: args.buildOnPreview ?? false,
            ...(args.registry ? { registries: [args.registry] } : {}),
          },
          { parent: this },
        ),
    );
    this.ref = pulumi.output(built.then((image) => pulumi.interpolate`${args.repository}@${image.digest}`)).apply((r) => r);
    this.registerOutputs({ ref: this.ref });
  }
}

/** The image reference of an `ImageSource`, building it (parented to `parent`) when asked. */
export function resolveImage(name: string, source: ImageSource, parent: pulumi.Resource): pulumi.Output<string> {
  if (!pulumi.Output.isInstance(source) && source && typeof source === 'object' && 'build' in source) {
    return new MiddlewareImage(name, source.build, { parent }).ref;
  }
  return pulumi.output(source as pulumi.Input<string>);
}
