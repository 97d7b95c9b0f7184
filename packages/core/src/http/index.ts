export { HttpClient, type HttpClientDescription, type HttpClientStats } from './client.ts';
export { currentRequestContext, type RequestContext, withRequestContext } from './context.ts';
export type { HttpAuth, HttpOptions } from './options.ts';
