'use strict';
// What the bundle gets for `import … from 'undici'` (build.mjs aliases it):
// only the parts the launcher uses (Agent, Pool, request). undici's own
// index also loads fetch, WebSocket, the cache, mocks and more, which the
// launcher never calls but would still parse and keep in memory in every
// idle daemon. `request` is undici's own makeDispatcher(api.request), copied
// from its index.js so it behaves the same.
//
// The paths below are undici's private layout, so this file is written for
// exactly one undici version: build.mjs refuses any other (build-checks.mjs),
// and test/undici-slim.test.ts compares makeDispatcher with undici's index
// and sends real requests through what is exported here.
const UNDICI_VERSION = '8.13.1';
const Agent = require('undici/lib/dispatcher/agent.js');
const Pool = require('undici/lib/dispatcher/pool.js');
const Client = require('undici/lib/dispatcher/client.js');
const api = require('undici/lib/api/index.js');
const util = require('undici/lib/core/util.js');
const errors = require('undici/lib/core/errors.js');
const { getGlobalDispatcher, setGlobalDispatcher } = require('undici/lib/global.js');
const Dispatcher = require('undici/lib/dispatcher/dispatcher.js');

// As undici's index does: pool.request(), agent.stream() and the like.
Object.assign(Dispatcher.prototype, api);

function makeDispatcher(fn) {
  return (url, opts, handler) => {
    if (typeof opts === 'function') {
      handler = opts;
      opts = null;
    }
    if (!url || (typeof url !== 'string' && typeof url !== 'object' && !(url instanceof URL))) {
      throw new errors.InvalidArgumentError('invalid url');
    }
    if (opts != null && typeof opts !== 'object') {
      throw new errors.InvalidArgumentError('invalid opts');
    }
    if (opts && opts.path != null) {
      if (typeof opts.path !== 'string') {
        throw new errors.InvalidArgumentError('invalid opts.path');
      }
      let path = opts.path;
      if (!opts.path.startsWith('/')) {
        path = `/${path}`;
      }
      url = new URL(util.parseOrigin(url).origin + path);
    } else {
      if (!opts) {
        opts = typeof url === 'object' ? url : {};
      }
      url = util.parseURL(url);
    }
    const { agent, dispatcher = getGlobalDispatcher(), ...restOpts } = opts;
    if (agent) {
      throw new errors.InvalidArgumentError('unsupported opts.agent. Did you mean opts.client?');
    }
    return fn.call(dispatcher, {
      ...restOpts,
      origin: url.origin,
      path: url.search ? `${url.pathname}${url.search}` : url.pathname,
      method: opts.method || (opts.body ? 'PUT' : 'GET'),
    }, handler);
  };
}

module.exports = {
  Agent, Pool, Client, errors, getGlobalDispatcher, setGlobalDispatcher,
  request: makeDispatcher(api.request),
  stream: makeDispatcher(api.stream),
  pipeline: makeDispatcher(api.pipeline),
};
