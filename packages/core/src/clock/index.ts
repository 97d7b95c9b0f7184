export { type Clock, systemClock, type TimerHandle } from './clock.ts';
export { flushMicrotasks, VirtualClock } from './virtual.ts';
