/** The topology model shared by the middleware, the operator and the Pulumi components. */
export * from './schema.js';
export * from './validate.js';
export * from './endpoint.js';
export * from './duration.js';
