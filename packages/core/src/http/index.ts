export { HttpClient, type HttpClientDescription, type HttpClientStats } from './client.ts';
export {
  currentRequestContext,
  parseTraceparent,
  type RequestContext,
  type Traceparent,
  withRequestContext,
} from './context.ts';
export type { HttpAuth, HttpOptions } from './options.ts';
