export { connectionMachine, summarizeError } from './connection-machine.js';
export type { ConnectionActor, ConnectionContext, ConnectionEvent, ConnectionInput, ErrorSummary, Schedule } from './connection-machine.js';
export { channelMachine } from './channel-machine.js';
export type { ChannelContext, ChannelEvent, ChannelInput } from './channel-machine.js';
export { heartbeatMachine } from './heartbeat-machine.js';
export type { HeartbeatInput } from './heartbeat-machine.js';
export { poolMachine, poolMemberMachine } from './pool-machine.js';
export type { PoolActor, PoolContext, PoolEvent, PoolInput, PoolMemberActor, PoolMemberContext, PoolMemberEvent, PoolMemberInput, PoolMemberState, PoolState } from './pool-machine.js';
