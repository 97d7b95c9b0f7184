export {
  type BulwarkEvent,
  type BulwarkEventMap,
  type BulwarkEventType,
  type EventBase,
  EventStream,
} from './events.ts';
