/**
 * Rooms: who is in which, and from which offset each member receives the room's messages. A room is
 * a stream with members; it outlives its members (its history waits for the next), up to MAX_ROOMS:
 * then the room that has been empty longest makes way, and its history goes with it.
 */
import { Stream } from './history';
import { LOBBY } from './protocol';
import type { Session } from './session';

/** Each member's session, and the offset after which it receives the stream's messages. */
export type Members = Map<Session, number>;

export class Room {
  readonly members: Members = new Map();
  constructor(
    readonly name: string,
    readonly stream: Stream,
  ) {}
}

export class Rooms {
  private readonly rooms = new Map<string, Room>();
  /** Rooms without members, longest empty first: the first to make way for a new room. */
  private readonly empty = new Set<Room>();

  constructor(
    private readonly max: number,
    private readonly historySize: number,
  ) {
    this.open(LOBBY);
  }

  get(name: string): Room | undefined {
    return this.rooms.get(name);
  }

  /** The room, created if need be; undefined when MAX_ROOMS rooms all have members. */
  open(name: string): Room | undefined {
    const existing = this.rooms.get(name);
    if (existing !== undefined) return existing;
    if (this.rooms.size >= this.max) {
      const oldest = this.empty.values().next().value as Room | undefined;
      if (oldest === undefined) return undefined;
      this.empty.delete(oldest);
      this.rooms.delete(oldest.name);
    }
    const room = new Room(name, new Stream(name, this.historySize));
    this.rooms.set(name, room);
    if (name !== LOBBY) this.empty.add(room); // empty until its first member is added
    return room;
  }

  add(room: Room, session: Session, from: number): void {
    room.members.set(session, from);
    this.empty.delete(room);
  }

  remove(room: Room, session: Session): void {
    room.members.delete(session);
    if (room.members.size === 0 && room.name !== LOBBY) this.empty.add(room);
  }

  get size(): number {
    return this.rooms.size;
  }

  [Symbol.iterator](): IterableIterator<Room> {
    return this.rooms.values();
  }
}
