export { FallbackPolicy, type FallbackStats, fallback } from './fallback.ts';
export type { FallbackOptions } from './options.ts';
