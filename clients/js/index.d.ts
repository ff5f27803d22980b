// Types of rcomet.js, the browser client of the rcomet push server.

/** A message from a channel, as the server sends it. */
export interface Message {
  type: "data" | "broadcast" | "close" | string;
  cname: string;
  seq: number;
  content: string;
  /** On position markers only (`next_seq`, `reset`). */
  epoch?: number;
}

export type Transport = "ws" | "sse" | "poll";

export type State = "idle" | "connecting" | "open" | "waiting" | "paused" | "closed";

export interface StateInfo {
  /** The transport in use (while connecting or open). */
  transport: Transport | null;
  /** This tab runs the connection (false: another tab does and shares it). */
  leader: boolean;
  /** While waiting: milliseconds until the next attempt. */
  delay?: number;
}

/** The server could not continue where this tab was: delivery goes on at `seq`. */
export interface Reset {
  cname: string;
  seq: number;
  epoch: number | null;
  /** Where the tab was. */
  was: { seq: number; epoch: number | null };
}

/** Messages from `from` up to `to` (excluded) were lost (they fell off the server's ring). */
export interface Gap {
  cname: string;
  from: number;
  to: number;
}

export interface Position {
  /** The next seq wanted (0: from now). */
  seq: number;
  /** The channel's incarnation (null: not known yet). */
  epoch: number | null;
}

export interface Options {
  /** The front port, e.g. "https://push.example.com" (ws: and wss: are derived from it). */
  url: string;
  /** Channel(s) to subscribe at once. */
  channel?: string | string[];
  channels?: string[];
  /** A token for the channels (string), or one per channel (function, may be async). */
  token?: string | ((cname: string) => string | Promise<string>);
  /** An app endpoint answering `GET signUrl?cname=NAME` with a JSON object holding `token`. */
  signUrl?: string;
  /** Where the first channel starts: the next seq wanted and its epoch (from `position()`). */
  seq?: number;
  epoch?: number;
  onMessage?: (m: Message) => void;
  onState?: (state: State, info: StateInfo) => void;
  onReset?: (r: Reset) => void;
  onGap?: (g: Gap) => void;
  /** Refusals from the server (401, 429, 400 messages) and failures to get a token. */
  onError?: (e: Message | Error) => void;
  /** Transports to use, in order (default: all, "ws", "sse", "poll"). */
  transports?: Transport[];
  /** Long-poll by JSONP instead of fetch (default: only after a fetch was refused). */
  jsonp?: boolean;
  /** Close the connection while every tab of the page is hidden. */
  pauseWhenHidden?: boolean;
  /** Share one connection among all tabs of the origin (default true where Web Locks exist). */
  share?: boolean;
  /** A new leader waits this long (ms) for the other tabs' positions before connecting (150). */
  shareWait?: number;
  /** Reconnect delays: full jitter over min(cap, base * 2^attempt) ms (500, 30000). */
  backoff?: { base?: number; cap?: number };
  /** A connection silent for this long (ms, default 70000) is given up and reopened. */
  timeout?: number;
}

export class RComet {
  constructor(options: Options);
  readonly state: State;
  readonly transport: Transport | null;
  readonly leader: boolean;
  subscribe(cname: string, from?: { seq?: number; epoch?: number; token?: string }): this;
  unsubscribe(cname: string): this;
  /** Where this tab is in a channel: keep it to resume after a reload. */
  position(cname: string): Position | undefined;
  close(): void;
}

export const TRANSPORTS: readonly Transport[];
export function backoff(attempt: number, base?: number, cap?: number, random?: () => number): number;
export function pickTransport(
  order: readonly Transport[],
  failed: Set<Transport>,
  has: Partial<Record<Transport, boolean>>,
): Transport | null;

type Event =
  | ["msg", Message]
  | ["reset", Reset]
  | ["gap", Gap]
  | ["error", Message];

/** The resume bookkeeping of a set of channels. */
export class Book {
  set(cname: string, seq?: number, epoch?: number | null): void;
  get(cname: string): Position | undefined;
  has(cname: string): boolean;
  delete(cname: string): void;
  take(m: Message): Event[];
}

export default RComet;
