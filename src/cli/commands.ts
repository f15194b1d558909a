/**
 * What a typed line means to the terminal client: a command (/join #rust, /who...) or something to say.
 * Pure, so the tests can check every form without a terminal.
 */
import { isRoomName } from '../chat/models/protocol';

export type Command =
  | { readonly kind: 'say'; readonly text: string }
  | { readonly kind: 'join' | 'switch'; readonly room: string }
  | { readonly kind: 'leave'; readonly room: string | undefined }
  | { readonly kind: 'who'; readonly room: string | undefined }
  | { readonly kind: 'rooms' | 'help' | 'quit' | 'nothing' }
  | { readonly kind: 'problem'; readonly text: string };

export function parseLine(line: string): Command {
  const command = line.trim();
  if (command === '') return { kind: 'nothing' };
  // "//text" says "/text"; anything not starting with "/" and a letter is said as it is, "@bob hi" included.
  if (line.startsWith('//')) return { kind: 'say', text: line.slice(1) };
  if (!/^\/[a-z]/i.test(command)) return { kind: 'say', text: line };
  const [verb, ...args] = command.split(/\s+/) as [string, ...string[]];
  const name = verb.toLowerCase();
  if (args.length > 1) return { kind: 'problem', text: `${name} takes at most one argument` };
  const arg = args[0];
  switch (name) {
    case '/quit':
    case '/help':
    case '/rooms':
      return arg === undefined ? { kind: name.slice(1) as 'quit' | 'help' | 'rooms' } : noArgument(name);
    case '/join':
    case '/switch': {
      if (arg === undefined) return { kind: 'problem', text: `usage: ${name} #room` };
      const room = roomOf(arg);
      return typeof room === 'string' ? { kind: name === '/join' ? 'join' : 'switch', room } : room;
    }
    case '/leave':
    case '/who': {
      const room = arg === undefined ? undefined : roomOf(arg);
      if (room !== undefined && typeof room !== 'string') return room;
      return { kind: name === '/leave' ? 'leave' : 'who', room };
    }
    default:
      return { kind: 'problem', text: `unknown command ${verb} (try /help)` };
  }
}

function noArgument(name: string): Command {
  return { kind: 'problem', text: `${name} takes no argument` };
}

/** "#Rust" or "rust": the room rust. Room names are lowercase on the server; we spare the user the rule. */
function roomOf(arg: string): string | Command {
  const room = arg.replace(/^#/, '').toLowerCase();
  if (isRoomName(room)) return room;
  return { kind: 'problem', text: `invalid room name ${JSON.stringify(arg)}: 1-32 letters, digits, "-" or "_"` };
}
