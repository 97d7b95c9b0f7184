export { ChaosPolicy, type ChaosStats, chaos } from './chaos.ts';
export type { ChaosOptions } from './options.ts';
