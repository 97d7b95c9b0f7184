export { HedgePolicy, type HedgeStats, hedge } from './hedge.ts';
export type { AdaptiveHedgeOptions, FixedHedgeOptions, HedgeOptions } from './options.ts';
