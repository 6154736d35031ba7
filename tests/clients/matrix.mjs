// Each mainstream client on its defaults against a live pcg-graphql; one JSON line per case:
// {"case": ..., "ok": true|false, "detail": ...}. Usage: node matrix.mjs URL TOKEN PROJECT_ID
import { createHash } from 'node:crypto';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { Client as UrqlClient, fetchExchange } from '@urql/core';
import { createClient as createSSEClient } from 'graphql-sse';

const [url, token, projectId] = process.argv.slice(2);
const auth = { authorization: `Bearer ${token}` };
const VIEWER = 'query Me { viewer { user { id name } } }';
const BOARD = 'subscription BoardEvents($p: ID!) { boardEvents(projectId: $p) { __typename seq } }';

function recording() {
  const seen = [];
  const recordingFetch = async (input, init = {}) => {
    const response = await fetch(input, init);
    const text = await response.clone().text();
    seen.push({ method: init.method ?? 'GET', url: String(input), status: response.status, body: text.slice(0, 300) });
    return response;
  };
  return { seen, fetch: recordingFetch };
}

async function createTask(title) {
  const response = await fetch(url, {
    method: 'POST', headers: { 'content-type': 'application/json', ...auth },
    body: JSON.stringify({ query: 'mutation CreateTask($i: CreateTaskInput!) { createTask(input: $i) { task { id } } }',
      variables: { i: { projectId, title } } }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
}

function report(name, ok, detail) {
  console.log(JSON.stringify({ case: name, ok, detail }));
}

async function urqlGet() {
  const { seen, fetch: f } = recording();
  const client = new UrqlClient({ url, exchanges: [fetchExchange], fetch: f, fetchOptions: { headers: auth } });
  const result = await client.query(VIEWER, {}).toPromise();
  report('urql on its defaults (queries as GET)', !result.error && seen[0]?.method === 'GET',
    { data: result.data, error: result.error?.message, requests: seen.map((r) => `${r.method} ${r.status}`) });
}

async function apolloPersisted() {
  const sha256 = (q) => createHash('sha256').update(q).digest('hex');
  const run = async () => {
    const { seen, fetch: f } = recording();
    const link = new PersistedQueryLink({ sha256 }).concat(new HttpLink({ uri: url, fetch: f, headers: auth }));
    const client = new ApolloClient({ link, cache: new InMemoryCache() });
    const result = await client.query({ query: gql(VIEWER), fetchPolicy: 'network-only' });
    return { result, seen };
  };
  const first = await run(); // hash only -> PERSISTED_QUERY_NOT_FOUND -> hash + document
  const second = await run(); // a new client: hash only, now known
  const ok = !!first.result.data?.viewer && first.seen.length === 2 && first.seen[0].body.includes('PersistedQueryNotFound')
    && second.seen.length === 1 && !!second.result.data?.viewer;
  report('Apollo Client PersistedQueryLink (automatic persisted queries)', ok,
    { first: first.seen.map((r) => `${r.method} ${r.status} ${r.body.slice(0, 60)}`), second: second.seen.map((r) => `${r.method} ${r.status}`) });
}

async function sse() {
  const client = createSSEClient({ url, headers: auth });
  const events = [];
  const done = new Promise((resolve, reject) => {
    const dispose = client.subscribe({ query: BOARD, variables: { p: projectId } }, {
      next: (value) => { events.push(value); if (events.length === 1) { dispose(); resolve(); } },
      error: reject,
      complete: resolve,
    });
  });
  await new Promise((r) => setTimeout(r, 500));
  await createTask('over graphql-sse');
  await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('no event in 10 s')), 10000))]);
  client.dispose();
  report('graphql-sse client (distinct connections mode)', events[0]?.data?.boardEvents?.__typename === 'TaskCreated', { events });
}

async function apolloMultipart() {
  const link = new HttpLink({ uri: url, headers: auth });
  const client = new ApolloClient({ link, cache: new InMemoryCache() });
  const events = [];
  const done = new Promise((resolve, reject) => {
    const subscription = client.subscribe({ query: gql(BOARD), variables: { p: projectId } }).subscribe({
      next: (value) => { events.push(value); if (events.length === 1) { subscription.unsubscribe(); resolve(); } },
      error: reject,
      complete: resolve,
    });
  });
  await new Promise((r) => setTimeout(r, 500));
  await createTask('over Apollo multipart');
  await Promise.race([done, new Promise((_, reject) => setTimeout(() => reject(new Error('no event in 10 s')), 10000))]);
  report('Apollo Client HttpLink subscription (multipart/mixed)', events[0]?.data?.boardEvents?.__typename === 'TaskCreated', { events });
}

for (const [name, fn] of [['urql', urqlGet], ['apq', apolloPersisted], ['sse', sse], ['multipart', apolloMultipart]]) {
  try {
    await fn();
  } catch (error) {
    report(name, false, { error: String(error?.stack ?? error) });
  }
}
process.exit(0);
