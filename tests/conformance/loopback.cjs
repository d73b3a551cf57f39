// Preloaded into the stdio<->HTTP bridge with `node --require ./loopback.cjs`.
//
// supergateway 4.0.0 has no --host option: it calls app.listen(port) and so binds every
// interface. This wrapper rewrites every TCP listen() of the process to 127.0.0.1, and when
// SW_PORT_FILE is set it writes the port actually bound there once the socket listens (the
// bridge is started with --port 0, so the kernel picks a free port and there is no race
// between choosing a port and binding it). Unix-socket and fd listens are left alone.
'use strict';
const net = require('node:net');
const fs = require('node:fs');

const HOST = '127.0.0.1';
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const cbs = args.filter((a) => typeof a === 'function');
  const first = args[0];
  let opts = null;
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, cb])
    opts = { port: Number(first) };
    if (typeof args[2] === 'number') opts.backlog = args[2];
    else if (typeof args[1] === 'number') opts.backlog = args[1];
  } else if (first === undefined || typeof first === 'function') {
    opts = { port: 0 };
  } else if (first && typeof first === 'object' && !first._handle && first.fd === undefined &&
             first.path === undefined) {
    opts = { ...first };
  }
  if (opts === null) return listen.apply(this, args);
  opts.host = HOST;
  delete opts.ipv6Only;
  const file = process.env.SW_PORT_FILE;
  if (file) {
    this.once('listening', () => {
      const addr = this.address();
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, `${addr.address} ${addr.port}\n`);
      fs.renameSync(tmp, file);
    });
  }
  return listen.call(this, opts, ...cbs);
};
