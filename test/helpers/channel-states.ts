/**
 * Waiting for a kombu-ts Channel's state, for tests that follow a recovery step by step.
 */
import type { Channel, ChannelState } from '../../src/index.js';

/**
 * Resolves when `channel` next enters `state` (its `state` event), then stops listening.
 *
 * @example
 * ```ts
 * const reopened = reaches(channel, 'open');
 * broker.dropConnections();
 * await reopened;
 * ```
 */
export function reaches(channel: Channel, state: ChannelState): Promise<void> {
  return new Promise((resolve) => {
    const on = ({ to }: { to: ChannelState }): void => {
      if (to !== state) return;
      channel.off('state', on);
      resolve();
    };
    channel.on('state', on);
  });
}
