/**
 * What /metrics shows: each layer's plain counters (src/http/stats.ts, src/websocket/stats.ts,
 * src/chat/models/stats.ts, src/redis/stats.ts) and the hub's gauges, named and described as metric
 * families at scrape time. The README's "Operations → Metrics" lists them all.
 */
import type { ChatGauges, ChatStats } from '../chat/models/stats';
import { QUEUE_DEPTH_BOUNDS } from '../chat/models/stats';
import type { RedisLink } from '../cluster/node';
import { counter, gauge, type Family, type Sample } from '../metrics/exposition';
import { LATENCY_BUCKETS_MS } from '../redis';
import type { WebSocketStats } from '../websocket';
import type { HttpStats } from './stats';

export interface Sources {
  readonly http: HttpStats;
  /** TCP connections open on the chat's server now. */
  readonly sockets: number;
  readonly websocket: WebSocketStats;
  readonly chat: ChatStats;
  readonly gauges: ChatGauges;
  /** Cluster mode: the node's Redis links. */
  readonly links: readonly RedisLink[];
}

export function chatFamilies(s: Sources): Family[] {
  const { http, websocket: ws, chat, gauges: g } = s;
  const wd = ws.drops;
  const cd = chat.drops;
  const families: Family[] = [
    counter('wschat_tcp_connections_accepted_total', 'TCP connections accepted on the chat port.', http.accepted),
    gauge('wschat_tcp_connections_open', 'TCP connections open on the chat port (pages, handshakes, WebSockets).',
      s.sockets),
    counter('wschat_http_upgrades_total', 'Requests for a WebSocket upgrade, accepted or not.', http.upgrades),
    counterBy('wschat_http_refusals_total', 'Upgrades refused and malformed requests, by HTTP status.', 'status',
      http.refused),
    counter('wschat_websocket_connections_opened_total', 'WebSocket handshakes completed.', ws.opened),
    gauge('wschat_websocket_connections_open', 'WebSocket connections open now.', ws.opened - ws.closed),
    counter('wschat_websocket_messages_received_total', 'WebSocket data messages received.', ws.messagesIn),
    counter('wschat_websocket_messages_sent_total', 'WebSocket data messages sent.', ws.messagesOut),
    counter('wschat_websocket_received_bytes_total', 'Bytes received after the handshake (frames as on the wire).',
      ws.bytesIn),
    counter('wschat_websocket_sent_bytes_total', 'Bytes sent after the handshake (frames as on the wire).',
      ws.bytesOut),
    counter('wschat_websocket_compressed_messages_sent_total',
      'Messages sent compressed (permessage-deflate); the rest went as they were.', ws.compressedOut),
    counter('wschat_websocket_deflate_input_bytes_total',
      'On connections with permessage-deflate: frame bytes of the messages sent, before compression.',
      ws.deflateBefore),
    counter('wschat_websocket_deflate_output_bytes_total',
      'On connections with permessage-deflate: frame bytes of the messages sent, as sent.', ws.deflateAfter),
    counterBy('wschat_websocket_close_codes_sent_total', 'Close frames sent, by close code (1005: no code).', 'code',
      ws.closeSent),
    counterBy('wschat_websocket_close_codes_received_total',
      'Connections ended, by the close code the peer sent (1005: a close frame without code, 1006: none).', 'code',
      ws.closeReceived),
    {
      name: 'wschat_clients_dropped_total',
      help: 'Connections the server ended for cause, by reason.',
      type: 'counter',
      samples: [
        ['buffer_full', wd.bufferFull],
        ['heartbeat', wd.heartbeat],
        ['protocol_error', wd.protocolError],
        ['invalid_payload', wd.invalidPayload],
        ['too_big', wd.tooBig],
        ['close_timeout', wd.closeTimeout],
        ['send_queue_full', cd.sendQueueFull],
        ['rate_limit', cd.rateLimit],
        ['unsupported_data', cd.unsupportedData],
        ['join_timeout', cd.joinTimeout],
        ['hello_refused', cd.helloRefused],
        ['replaced', cd.replaced],
      ].map(([reason, value]) => ({ labels: { reason: String(reason) }, value: Number(value) })),
    },
    counter('wschat_chat_hellos_total', 'Hellos (a name, or a v2 hello) handed to the hub.', chat.hellos),
    gauge('wschat_chat_sessions', 'Names held: users online, and those in their resume grace period.', g.sessions),
    gauge('wschat_chat_clients', 'Connections holding a name.', g.clients),
    gauge('wschat_chat_rooms', 'Rooms (in a cluster: the rooms this node follows).', g.rooms),
    gauge('wschat_chat_history_messages', 'Messages held in the history of rooms and private inboxes.',
      g.historyMessages),
    {
      name: 'wschat_chat_requests_total',
      help: 'Requests from clients, by type.',
      type: 'counter',
      samples: Object.entries(chat.requests).map(([type, value]) => ({ labels: { type }, value: value as number })),
    },
    counter('wschat_chat_deliveries_total', 'Messages put in a client\'s send queue.', chat.deliveries),
    {
      name: 'wschat_chat_resumes_total',
      help: 'Streams subscribed by a hello or join, by outcome: all missed messages sent (recovered), ' +
        'history instead (not_recovered), or no position given (none).',
      type: 'counter',
      samples: [
        { labels: { outcome: 'recovered' }, value: chat.resumeRecovered },
        { labels: { outcome: 'not_recovered' }, value: chat.resumeNotRecovered },
        { labels: { outcome: 'none' }, value: chat.resumeNone },
      ],
    },
    {
      name: 'wschat_chat_send_queue_depth',
      help: 'Entries in a client\'s send queue when its writer woke up (once per write batch).',
      type: 'histogram',
      bounds: QUEUE_DEPTH_BOUNDS,
      samples: [{ ...chat.sendQueueDepth }],
    },
  ];
  if (s.links.length > 0) families.push(...redisFamilies(s.links));
  return families;
}

function redisFamilies(links: readonly RedisLink[]): Family[] {
  const per = (read: (l: RedisLink) => number): Sample[] =>
    links.map((l) => ({ labels: { link: l.name }, value: read(l) }));
  return [
    { name: 'wschat_redis_link_up', help: 'Redis link ready (1) or not (0).', type: 'gauge',
      samples: per((l) => (l.up() ? 1 : 0)) },
    { name: 'wschat_redis_connects_total', help: 'Redis links established (handshake done).', type: 'counter',
      samples: per((l) => l.stats.connects) },
    { name: 'wschat_redis_reconnects_total', help: 'Redis links established again after a loss.', type: 'counter',
      samples: per((l) => l.stats.reconnects) },
    { name: 'wschat_redis_disconnects_total', help: 'Ready Redis links lost.', type: 'counter',
      samples: per((l) => l.stats.disconnects) },
    { name: 'wschat_redis_commands_total', help: 'Redis commands sent.', type: 'counter',
      samples: per((l) => l.stats.commands) },
    { name: 'wschat_redis_error_replies_total', help: 'Redis error replies.', type: 'counter',
      samples: per((l) => l.stats.errorReplies) },
    { name: 'wschat_redis_command_timeouts_total', help: 'Redis commands that timed out.', type: 'counter',
      samples: per((l) => l.stats.timeouts) },
    {
      name: 'wschat_redis_command_duration_seconds',
      help: 'Redis command latency, from send to reply.',
      type: 'histogram',
      bounds: LATENCY_BUCKETS_MS.map((ms) => ms / 1000),
      samples: links.map((l) => ({
        labels: { link: l.name },
        counts: l.stats.latency.counts,
        sum: l.stats.latency.sumMs / 1000,
        count: l.stats.latency.count,
      })),
    },
  ];
}

/** A counter per label value (close codes, statuses), in ascending order. */
function counterBy(name: string, help: string, label: string, values: ReadonlyMap<number, number>): Family {
  const sorted = [...values].sort(([a], [b]) => a - b);
  const samples = sorted.map(([key, value]) => ({ labels: { [label]: String(key) }, value }));
  return { name, help, type: 'counter', samples };
}
