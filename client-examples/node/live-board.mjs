// A live-board client in Node: log in, list projects, watch a board, make a task and move
// it, and print the board events that come back.
//
//   npm ci                       # graphql-ws (the client), ws (WebSocket for Node), graphql
//   node live-board.mjs          # against `make demo` on http://127.0.0.1:8000
//   node live-board.mjs --watch  # ...and keep printing events until Ctrl-C
//   node live-board.mjs --watch --after CURSOR  # resume from a printed resume point
//
// Queries and mutations are plain `fetch` POSTs to /graphql; the board subscription goes
// over a websocket speaking graphql-transport-ws (the graphql-ws client), authenticated by
// the connection_init payload.

import { parseArgs } from 'node:util';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const LOG_IN = `
mutation LogIn($input: LogInInput!) {
  logIn(input: $input) { accessToken user { name email } }
}`;

const PROJECTS = `
query Projects {
  viewer { user { name email } }
  projects(first: 100) { nodes { id name viewerRole taskCount organization { slug } } }
}`;

// The board and the log position it was read at, in one query: subscribing `after` that
// cursor replays whatever happened since, so nothing falls between the read and the
// subscription, however long the websocket takes to open.
const BOARD = `
query BoardSnapshot($id: ID!) {
  project(id: $id) {
    name eventCursor
    board { columns { status tasks { totalCount } } }
  }
}`;

const BOARD_EVENTS = `
subscription BoardEvents($projectId: ID!, $after: String) {
  boardEvents(projectId: $projectId, after: $after) {
    __typename seq cursor actor { name }
    ... on TaskCreated { task { id title status } }
    ... on TaskUpdated { changedFields task { id title status } }
    ... on TaskMoved { fromStatus toStatus task { id title status } }
    ... on TaskArchived { task { id title status } }
    ... on TaskUnarchived { task { id title status } }
    ... on TaskDeleted { taskId status }
    ... on CommentAdded { taskId comment { body } }
    ... on ResyncRequired { reason }
  }
}`;

const CREATE_TASK = `
mutation CreateTask($input: CreateTaskInput!) {
  createTask(input: $input) { task { id title status version } }
}`;

const MOVE_TASK = `
mutation MoveTask($input: MoveTaskInput!) {
  moveTask(input: $input) { task { id status position version } }
}`;

const WRITERS = new Set(['OWNER', 'ADMIN', 'EDITOR']);

const env = process.env;
const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: env.PCG_URL ?? 'http://127.0.0.1:8000' },
    token: { type: 'string', default: env.PCG_TOKEN ?? '' }, // access token or pcg_ API key
    email: { type: 'string', default: env.PCG_EMAIL ?? 'ada@demo.pcg' },
    password: { type: 'string', default: env.PCG_PASSWORD ?? 'demo-password' },
    project: { type: 'string', default: env.PCG_PROJECT ?? '' }, // name or ID
    title: { type: 'string', default: 'Hello from Node' },
    timeout: { type: 'string', default: '10' }, // seconds to wait for the events
    watch: { type: 'boolean', default: false },
    after: { type: 'string', default: '' }, // a saved event cursor to resume from
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log('node live-board.mjs [--url URL] [--token TOKEN | --email E --password P] ' +
    '[--project NAME|ID] [--title T] [--timeout S] [--watch] [--after CURSOR]\n' +
    'Environment: PCG_URL, PCG_TOKEN, PCG_EMAIL, PCG_PASSWORD, PCG_PROJECT.');
  process.exit(0);
}

class GraphQLError extends Error {
  constructor(errors) {
    // Every GraphQL error carries extensions.code: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, ...
    super(errors.map((e) => `GraphQL error ${e.extensions?.code}: ${e.message}`).join('\n'));
  }
}

const api = `${args.url.replace(/\/+$/, '')}/graphql`;
const wsApi = api.replace(/^http/, 'ws');

async function request(query, variables = {}, token = '') {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(api, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  const body = await response.json();
  if (body.errors?.length) throw new GraphQLError(body.errors);
  return body.data;
}

function describe(event) {
  const kind = event.__typename;
  const by = event.actor?.name ?? 'someone';
  const task = event.task;
  let detail = task ? `"${task.title}"` : '';
  if (kind === 'TaskMoved') detail += ` ${event.fromStatus} -> ${event.toStatus}`;
  else if (kind === 'TaskUpdated') detail += ` changed ${event.changedFields.join(',')}`;
  else if (kind === 'CommentAdded') detail = `comment "${event.comment.body}"`;
  else if (task) detail += ` in ${task.status}`;
  const line = `event ${event.seq} ${kind} task=${task?.id ?? event.taskId ?? '-'} ${detail} (by ${by})`;
  return line.replaceAll('  ', ' ');
}

function pickProject(projects, wanted) {
  if (wanted) {
    const found = projects.find((p) => p.id === wanted || p.name === wanted);
    if (!found) throw new Error(`No project named or with ID "${wanted}" among yours`);
    return found;
  }
  const writable = projects.find((p) => WRITERS.has(p.viewerRole));
  if (!writable) throw new Error('You may not edit any project: pass --project, or log in as an editor');
  return writable;
}

async function main() {
  let token = args.token.replace(/^Bearer\s+/i, '').trim();
  if (!token) {
    const data = await request(LOG_IN, { input: { email: args.email, password: args.password } });
    token = data.logIn.accessToken;
  }

  const { viewer, projects } = await request(PROJECTS, {}, token);
  console.log(`Logged in as ${viewer.user.name} <${viewer.user.email}>`);
  console.log('Projects you can see:');
  for (const p of projects.nodes) {
    console.log(`  ${p.name.padEnd(24)} ${p.id}  (${p.viewerRole.toLowerCase()}, ${p.taskCount} tasks)`);
  }
  const project = pickProject(projects.nodes, args.project);
  const readBoard = async () => {
    const board = (await request(BOARD, { id: project.id }, token)).project;
    console.log(`Board of ${board.name}: ` +
      board.board.columns.map((c) => `${c.status} ${c.tasks.totalCount}`).join(', '));
    return board;
  };
  const board = await readBoard();

  // The websocket authenticates once, with the connection_init payload. graphql-ws speaks
  // graphql-transport-ws; `ws` supplies the WebSocket class that Node 20 lacks.
  let closedWith = null;
  const live = createClient({
    url: wsApi,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    lazy: false,
    retryAttempts: 0,
    on: { closed: (event) => { closedWith = event; } },
  });

  // Events, or what ended the subscription, in arrival order.
  const inbox = [];
  let wake = () => {};
  const deliver = (item) => { inbox.push(item); wake(); };
  // The last event's cursor (at first, the board's or --after): pass it as `after` to resume
  // without a gap.
  let cursor = args.after || board.eventCursor;
  // Resuming from a saved cursor: write only once the backlog has started to arrive (or a
  // resync is done), so that our own events come after it.
  let markResumed;
  const resumed = new Promise((resolve) => { markResumed = resolve; });
  if (cursor === board.eventCursor) markResumed();

  const follow = () => {
    let resyncing = false;
    const stop = live.subscribe(
      { query: BOARD_EVENTS, variables: { projectId: project.id, after: cursor } },
      {
        next: (result) => {
          if (result.errors) { deliver(new GraphQLError(result.errors)); return; }
          const event = result.data.boardEvents;
          if (event.__typename !== 'ResyncRequired') {
            cursor = event.cursor;
            deliver(event);
            markResumed();
            return;
          }
          // The cursor is older than the events the server keeps: rebuild from a fresh read
          // and follow on from that read's cursor.
          resyncing = true;
          stop();
          console.log(`Resync required (${event.reason}): refetching the board`);
          readBoard().then((fresh) => {
            cursor = fresh.eventCursor;
            console.log(`Resubscribing after ${cursor}`);
            follow();
            markResumed();
          }, (error) => { deliver(error); markResumed(); });
        },
        error: (error) => {
          deliver(error instanceof Error ? error
            : new Error(Array.isArray(error) ? new GraphQLError(error).message
              : `websocket closed: ${error?.code ?? ''} ${error?.reason ?? closedWith?.reason ?? ''}`));
          markResumed();
        },
        complete: () => { if (!resyncing) deliver(new Error('the server ended the subscription')); },
      },
    );
  };
  follow();
  const nextEvent = (ms) => new Promise((resolve) => {
    if (inbox.length) return resolve(inbox.shift());
    const timer = ms == null ? null : setTimeout(() => { wake = () => {}; resolve(null); }, ms);
    wake = () => { clearTimeout(timer); wake = () => {}; resolve(inbox.shift()); };
  });

  console.log(`Watching ${project.name} over graphql-transport-ws`);
  // No need to wait for the subscription to reach the server before writing: it starts at
  // the board's eventCursor, so our own writes are replayed if need be.
  try {
    await resumed;
    const created = (await request(CREATE_TASK, {
      input: { projectId: project.id, title: args.title, priority: 'HIGH' },
    }, token)).createTask.task;
    console.log(`Created task ${created.id} "${created.title}" in ${created.status}`);
    const moved = (await request(MOVE_TASK, {
      input: { id: created.id, status: 'INPROGRESS', expectedVersion: created.version },
    }, token)).moveTask.task;
    console.log(`Moved task ${created.id} to ${moved.status} (version ${moved.version})`);

    // Print every event of the board; stop once both of ours are back (unless --watch).
    const waitingFor = new Set(['TaskCreated', 'TaskMoved']);
    const deadline = Date.now() + Number(args.timeout) * 1000;
    while (waitingFor.size || args.watch) {
      const event = await nextEvent(waitingFor.size ? Math.max(0, deadline - Date.now()) : null);
      if (event === null) {
        throw new Error(`Timed out waiting for ${[...waitingFor].sort().join(' and ')}`);
      }
      if (event instanceof Error) throw event;
      console.log(describe(event));
      if (waitingFor.size && event.task?.id === created.id) {
        waitingFor.delete(event.__typename);
        if (!waitingFor.size) {
          console.log(`Saw both events of task ${created.id} at ${new Date().toLocaleTimeString()}.` +
            (args.watch ? ` Watching for more (Ctrl-C stops; resume point: ${cursor}).`
              : ' Run with --watch to keep listening.'));
        }
      }
    }
  } finally {
    await live.dispose();
  }
}

main().catch((error) => {
  const cause = error.cause ? ` (${error.cause.code ?? error.cause.message})` : '';
  console.error(`${error.message}${cause}`);
  process.exit(1);
});
