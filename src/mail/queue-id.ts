/** Queue ids: the `queued as` of a 250 and the id of our Received: field, 16 hex digits (core/random-pool.ts says why pooled). */
import { randomHex } from '../core/random-pool.ts';

export const newQueueId = (): string => randomHex(8);
