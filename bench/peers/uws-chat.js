#!/usr/bin/env node
// A chat server on uWebSockets.js speaking PROTOCOL.md's JSON encoding
// (text frames), for the broadcast bench's comparison runs: started by the
// bench like our server (`--server-bin bench/peers/uws-chat.js`), it takes
// the same flags (it uses only --listen), prints the same ready line and
// stops on SIGTERM. It does what our server does for the bench's load: a
// welcome on connect, joins by `join` message (loadgen's default) with a
// notice to the whole room, chats relayed to every member with the sender
// included (uWS pub/sub, app.publish), pongs, and leave notices on close.
// It checks much less than our server (no limits, no room-name rules).
//
// uWebSockets.js is not in this repository: install it beside the bench,
// e.g. `npm install --prefix /tmp/uws @trufflesuite/uws-js-unofficial@20.30.0-unofficial.0`
// (Node 20), and run the bench with NODE_PATH=/tmp/uws/node_modules.
'use strict';

const uWS = require('@trufflesuite/uws-js-unofficial');

function listenAddress(argv) {
  const i = argv.indexOf('--listen');
  const value = i >= 0 && i + 1 < argv.length ? argv[i + 1] : '127.0.0.1:0';
  const colon = value.lastIndexOf(':');
  const host = value.slice(0, colon);
  const port = Number(value.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`uws-chat: --listen wants HOST:PORT, not ${value}`);
    process.exit(2);
  }
  return { host, port };
}

let nextUser = 0;
let nextId = 0;

// Members in PROTOCOL.md's order, as our server writes them.
function message(type, room, username, payload, id, userId) {
  return JSON.stringify({
    type, room, username, payload, id, user_id: userId, timestamp: Date.now(),
  });
}

function error(ws, text) {
  const u = ws.getUserData();
  ws.send(message('system', '', u.name, `error: ${text}`, 0, u.id), false);
}

const { host, port } = listenAddress(process.argv.slice(2));
const app = uWS.App();
app.ws('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  idleTimeout: 0,
  // Large enough that no relayed copy is dropped for a slow reader: a
  // server that sheds copies under load does less work than one that
  // delivers them all, and the two sets of figures would not compare.
  maxBackpressure: 64 * 1024 * 1024,
  closeOnBackpressureLimit: false,
  sendPingsAutomatically: false,
  open: (ws) => {
    const u = ws.getUserData();
    u.id = ++nextUser;
    u.name = `user-${u.id}`;
    u.rooms = new Set();
    u.current = '';
    ws.send(message('system', '', u.name, 'welcome', 0, u.id), false);
  },
  message: (ws, data, isBinary) => {
    if (isBinary) {
      error(ws, 'this server speaks JSON in text frames only');
      return;
    }
    let m;
    try {
      m = JSON.parse(Buffer.from(data).toString('utf8'));
    } catch (e) {
      error(ws, 'malformed message');
      return;
    }
    const u = ws.getUserData();
    const room = typeof m.room === 'string' && m.room !== '' ? m.room : u.current;
    switch (m.type) {
      case 'join':
        if (!room) return error(ws, 'join without a room');
        if (m.username) u.name = m.username;
        ws.subscribe(room);
        u.rooms.add(room);
        u.current = room;
        app.publish(room, message('join', room, u.name, '', ++nextId, u.id), false);
        return;
      case 'chat':
        if (!u.rooms.has(room)) return error(ws, 'not in that room');
        if (m.username) u.name = m.username;
        app.publish(room, message('chat', room, u.name, m.payload ?? '', ++nextId, u.id), false);
        return;
      case 'ping':
        ws.send(message('pong', '', '', m.payload ?? '', m.id ?? 0, u.id), false);
        return;
      default:
        error(ws, `unsupported message type ${JSON.stringify(m.type)}`);
    }
  },
  close: (ws) => {
    // Already unsubscribed: the notice goes to the remaining members.
    const u = ws.getUserData();
    for (const room of u.rooms) {
      app.publish(room, message('leave', room, u.name, '', ++nextId, u.id), false);
    }
  },
});

let listenSocket = null;
app.listen(host, port, (token) => {
  if (!token) {
    console.error(`uws-chat: cannot listen on ${host}:${port}`);
    process.exit(1);
  }
  listenSocket = token;
  console.log(`listening ws=${host}:${uWS.us_socket_local_port(token)} metrics=off`);
});

process.on('SIGTERM', () => {
  if (listenSocket) uWS.us_listen_socket_close(listenSocket);
  process.exit(0);
});
