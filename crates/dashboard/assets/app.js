// Funetun dashboard: one page, hash routes, plain DOM.
//
// Routes: #/ (network graph and jobs), #/jobs, #/jobs/<id>, #/participants.
// Every POLL_MS the current view fetches its JSON from the orchestrator and
// redraws only the sections whose data changed. A failed fetch (no answer,
// a timeout, or a 502/503/504 from a proxy) shows the "orchestrator
// unreachable" banner; the next good answer hides it again.
'use strict';

(() => {
  const POLL_MS = 1000;
  const FETCH_TIMEOUT_MS = 2500;
  const IDLE_SECS = 30;
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const WEI_PER_ETH = 10n ** 18n;

  // ---- small DOM helpers -------------------------------------------------

  function fill(el, attrs, children) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const h = (tag, attrs, ...children) => fill(document.createElement(tag), attrs, children);
  const s = (tag, attrs, ...children) => fill(document.createElementNS(SVG_NS, tag), attrs, children);

  // ---- formatting --------------------------------------------------------

  function short(hex) {
    if (typeof hex !== 'string') return '—';
    return hex.length > 14 ? `${hex.slice(0, 6)}…${hex.slice(-4)}` : hex;
  }
  const code = (hex, testid) =>
    hex ? h('code', { title: hex, 'data-testid': testid, 'data-full': hex }, short(hex)) : '—';

  function eth(wei) {
    let v;
    try {
      v = BigInt(wei);
    } catch (_) {
      return '—';
    }
    const neg = v < 0n;
    if (neg) v = -v;
    const whole = v / WEI_PER_ETH;
    const rest = v % WEI_PER_ETH;
    let frac = rest.toString().padStart(18, '0').slice(0, 6).replace(/0+$/, '');
    if (rest > 0n && frac === '' && whole === 0n) return `${neg ? '-' : ''}<0.000001 ETH`;
    return `${neg ? '-' : ''}${whole.toLocaleString('en-US')}${frac ? '.' + frac : ''} ETH`;
  }
  const money = (wei, testid) => h('span', { class: 'eth', title: `${wei} wei`, 'data-testid': testid, 'data-wei': wei }, eth(wei));

  const pct = (x) => (typeof x === 'number' && isFinite(x) ? `${(x * 100).toFixed(1)}%` : '—');
  const num = (x, d = 4) => (typeof x === 'number' && isFinite(x) ? x.toFixed(d) : '—');

  function ago(secs, now) {
    if (!secs) return 'never';
    const d = Math.max(0, Math.round(now - secs));
    if (d < 60) return `${d}s ago`;
    if (d < 3600) return `${Math.floor(d / 60)}m ago`;
    if (d < 86400) return `${Math.floor(d / 3600)}h ago`;
    return `${Math.floor(d / 86400)}d ago`;
  }
  const badge = (status, testid) => h('span', { class: `badge badge-${status}`, 'data-testid': testid, 'data-status': status }, status);

  // ---- fetching ----------------------------------------------------------

  class Unreachable extends Error {}

  const live = {
    reachable: null,
    serverNow: Date.now() / 1000,
    lastOk: null,
  };

  // GET `url`; resolves to { status, text, data } for any answer the
  // orchestrator itself gave, rejects with Unreachable otherwise.
  async function get(url, asJson = true) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    let res;
    let text;
    try {
      res = await fetch(url, { cache: 'no-store', signal: ctl.signal, headers: { accept: asJson ? 'application/json' : '*/*' } });
      text = await res.text();
    } catch (e) {
      throw new Unreachable(ctl.signal.aborted ? `No answer from ${url} within ${FETCH_TIMEOUT_MS / 1000} s.` : `Cannot reach ${url}.`);
    } finally {
      clearTimeout(timer);
    }
    if (res.status === 502 || res.status === 503 || res.status === 504) {
      throw new Unreachable(`${url} answered ${res.status}.`);
    }
    const date = Date.parse(res.headers.get('date') || '');
    if (isFinite(date)) live.serverNow = date / 1000;
    let data = null;
    if (asJson && res.ok) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    return { status: res.status, ok: res.ok, text, data };
  }

  function setReachable(ok, detail) {
    const banner = document.getElementById('banner');
    const badgeEl = document.getElementById('live');
    live.reachable = ok;
    banner.hidden = ok;
    document.body.classList.toggle('unreachable', !ok);
    if (ok) {
      live.lastOk = new Date();
      badgeEl.dataset.state = 'live';
      badgeEl.textContent = `live · ${live.lastOk.toLocaleTimeString()}`;
      badgeEl.title = 'polling every second';
      badgeEl.dataset.updatedAt = String(live.lastOk.getTime());
    } else {
      badgeEl.dataset.state = 'unreachable';
      badgeEl.textContent = 'unreachable';
      const since = live.lastOk ? ` Last data: ${live.lastOk.toLocaleTimeString()}.` : '';
      document.getElementById('banner-detail').textContent =
        `${detail || 'No answer.'} The page keeps the last data it saw and retries every second.${since}`;
    }
  }

  // ---- sections: redrawn only when their data changes --------------------

  const sectionKeys = new Map();
  function section(id, key, build) {
    const el = document.getElementById(id);
    if (!el || sectionKeys.get(id) === key) return;
    sectionKeys.set(id, key);
    el.replaceChildren(...[build()].flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  }

  // ---- network graph -----------------------------------------------------

  // Layout: trainers | orchestrator and contract | validators in three
  // columns; owners and challengers in a row above, right of the centre, so
  // their edges to the orchestrator and the contract cross nobody. Within a
  // group nodes are sorted by id: the same graph always gives the same picture.
  const TYPE_ORDER = ['owner', 'challenger', 'trainer', 'orchestrator', 'contract', 'validator'];
  const TYPE_COLUMN = { trainer: 0, orchestrator: 1, contract: 1, validator: 2 };
  const COLUMN_X = [170, 480, 790];
  const GRAPH_W = 960;
  const TOP_ROW_Y = 44;
  const BODY_TOP = 120;

  // Edge labels where they fit: busiest edges first, each at the first spot
  // along its curve that overlaps no node and no label already placed; an
  // edge whose label finds no room keeps it in its tooltip. A real market
  // has many message kinds between the same two nodes, and labels stacked
  // on each other help nobody.
  let measureCtx = null;
  function labelWidth(text) {
    // The width the browser will draw: edge labels are 10px in the page's font.
    if (!measureCtx) measureCtx = document.createElement('canvas').getContext('2d');
    if (!measureCtx) return text.length * 6.5;
    measureCtx.font = `10px ${getComputedStyle(document.body).fontFamily}`;
    return measureCtx.measureText(text).width;
  }

  function placeLabels(labels, pos, height) {
    const boxes = [];
    for (const { x, y, n } of pos.values()) {
      const service = n.type === 'orchestrator' || n.type === 'contract';
      boxes.push(service ? { x0: x - 50, y0: y - 24, x1: x + 50, y1: y + 24 } : { x0: x - 24, y0: y - 24, x1: x + 24, y1: y + 24 });
      if (!service) boxes.push({ x0: x - 48, y0: y + 24, x1: x + 48, y1: y + 42 });
    }
    COLUMN_X.forEach((x) => boxes.push({ x0: x - 110, y0: BODY_TOP - 28, x1: x + 110, y1: BODY_TOP - 8 }));
    const hits = (r) => boxes.some((q) => r.x0 < q.x1 && q.x0 < r.x1 && r.y0 < q.y1 && q.y0 < r.y1);
    const placed = [];
    const order = [...labels].sort((p, q) => q.count - p.count || p.text.localeCompare(q.text));
    for (const l of order) {
      const half = labelWidth(l.text) / 2 + 3;
      for (const t of [0.5, 0.4, 0.6, 0.3, 0.7, 0.22, 0.78]) {
        const u = 1 - t;
        const x = u * u * l.a.x + 2 * u * t * l.c.x + t * t * l.b.x;
        const y = u * u * l.a.y + 2 * u * t * l.c.y + t * t * l.b.y + 3;
        const r = { x0: x - half, y0: y - 10, x1: x + half, y1: y + 3 };
        if (r.x0 < 0 || r.x1 > GRAPH_W || r.y0 < 0 || r.y1 > height || hits(r)) continue;
        boxes.push(r);
        placed.push({ x, y, text: l.text });
        break;
      }
    }
    return placed;
  }

  function graphView(graph, now) {
    const nodes = Array.isArray(graph && graph.nodes) ? graph.nodes : [];
    const edges = Array.isArray(graph && graph.edges) ? graph.edges : [];
    if (nodes.length === 0) {
      return h('p', { class: 'empty', 'data-testid': 'graph-empty' }, 'No participants yet.');
    }
    const rank = (t) => {
      const i = TYPE_ORDER.indexOf(t);
      return i < 0 ? TYPE_ORDER.length : i;
    };
    const columns = [[], [], []];
    const topRow = [];
    for (const n of [...nodes].sort((a, b) => rank(a.type) - rank(b.type) || String(a.id).localeCompare(String(b.id)))) {
      if (n.type in TYPE_COLUMN) columns[TYPE_COLUMN[n.type]].push(n);
      else topRow.push(n);
    }
    const tallest = Math.max(1, ...columns.map((c) => c.length));
    const height = Math.max(380, BODY_TOP + 40 + tallest * 84);
    const pos = new Map();
    topRow.forEach((n, i) => pos.set(n.id, { x: COLUMN_X[1] + 210 + i * 110, y: TOP_ROW_Y, n }));
    columns.forEach((col, ci) => {
      const step = (height - BODY_TOP - 20) / col.length;
      col.forEach((n, i) => pos.set(n.id, { x: COLUMN_X[ci], y: BODY_TOP + step * (i + 0.5), n }));
    });
    const idle = (t) => !t || now - t > IDLE_SECS;

    const svg = s('svg', {
      viewBox: `0 0 ${GRAPH_W} ${height}`,
      class: 'graph',
      role: 'img',
      'aria-label': 'who talks to whom',
      'data-testid': 'graph',
      'data-nodes': nodes.length,
      'data-edges': edges.length,
    });
    svg.append(
      s('defs', {},
        s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
          s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' }))),
    );
    ['trainers', 'orchestrator · contract', 'validators'].forEach((t, i) =>
      svg.append(s('text', { x: COLUMN_X[i], y: BODY_TOP - 14, class: 'column-title', 'text-anchor': 'middle' }, t)));

    // Edges between the same two nodes fan out so each stays readable.
    const groups = new Map();
    for (const e of edges) {
      if (!pos.has(e.source) || !pos.has(e.target) || e.source === e.target) continue;
      const key = [e.source, e.target].sort().join('|');
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(e);
    }
    const edgeLayer = s('g', { class: 'edges' });
    const labelLayer = s('g', { class: 'edge-labels' });
    const labels = [];
    for (const group of groups.values()) {
      group.sort((a, b) => String(a.id).localeCompare(String(b.id)));
      group.forEach((e, i) => {
        const a = pos.get(e.source);
        const b = pos.get(e.target);
        const dx = b.x - a.x;
        const dy = b.y - a.y;
        const len = Math.hypot(dx, dy) || 1;
        // Normal relative to a fixed orientation of the pair, so A→B and B→A fan apart.
        const flip = e.source < e.target ? 1 : -1;
        const nx = (-dy / len) * flip;
        const ny = (dx / len) * flip;
        const bend = (i - (group.length - 1) / 2) * 34;
        const cx = (a.x + b.x) / 2 + nx * bend;
        const cy = (a.y + b.y) / 2 + ny * bend;
        // Stop short of the target node so the arrow head shows.
        const tx = b.x - ((b.x - cx) / (Math.hypot(b.x - cx, b.y - cy) || 1)) * 26;
        const ty = b.y - ((b.y - cy) / (Math.hypot(b.x - cx, b.y - cy) || 1)) * 26;
        const count = Number(e.count) || 0;
        const width = Math.min(10, 1 + 1.6 * Math.log2(1 + count));
        const stale = idle(e.last_seen);
        edgeLayer.append(
          s('path', {
            d: `M${a.x},${a.y} Q${cx},${cy} ${tx},${ty}`,
            class: `edge${stale ? ' idle' : ''}`,
            'stroke-width': width.toFixed(2),
            'marker-end': 'url(#arrow)',
            'data-testid': 'graph-edge',
            'data-source': e.source,
            'data-target': e.target,
            'data-label': e.label,
            'data-count': count,
            'data-idle': String(stale),
          }, s('title', {}, `${e.label}: ${count} message${count === 1 ? '' : 's'}, last ${ago(e.last_seen, now)}`)),
        );
        labels.push({ text: `${e.label} ×${count}`, count, a, c: { x: cx, y: cy }, b });
      });
    }
    placeLabels(labels, pos, height).forEach(({ x, y, text }) =>
      labelLayer.append(s('text', { x, y, class: 'edge-label', 'text-anchor': 'middle', 'data-testid': 'graph-edge-label' }, text)));
    svg.append(edgeLayer, labelLayer);

    const nodeLayer = s('g', { class: 'nodes' });
    for (const { x, y, n } of pos.values()) {
      const stale = idle(n.last_seen);
      const service = n.type === 'orchestrator' || n.type === 'contract';
      const shape = service
        ? s('rect', { x: x - 46, y: y - 20, width: 92, height: 40, rx: 8 })
        : s('circle', { cx: x, cy: y, r: 20 });
      const label = String(n.label || n.id);
      nodeLayer.append(
        s('g', {
          class: `node node-${n.type}${stale ? ' idle' : ''}`,
          'data-testid': 'graph-node',
          'data-type': n.type,
          'data-id': n.id,
          'data-idle': String(stale),
        },
        s('title', {}, `${n.type} ${n.id}\nlast seen ${ago(n.last_seen, now)}${stale ? ' (idle)' : ''}`),
        shape,
        s('text', { x, y: service ? y + 4 : y + 4, class: 'node-glyph', 'text-anchor': 'middle' }, service ? n.type : n.type.slice(0, 1).toUpperCase()),
        service ? null : s('text', { x, y: y + 36, class: 'node-label', 'text-anchor': 'middle', 'data-testid': 'graph-node-label' },
          label.length > 16 ? short(label) : label)),
      );
    }
    svg.append(nodeLayer);
    return svg;
  }

  function graphLegend() {
    return h('div', { class: 'legend' },
      TYPE_ORDER.map((t) => h('span', { class: `legend-item node-${t}` }, h('i', {}), t)),
      h('span', { class: 'legend-item idle' }, h('i', {}), `idle > ${IDLE_SECS}s`),
      h('span', { class: 'legend-note' }, 'edge width grows with message count'));
  }

  // ---- jobs --------------------------------------------------------------

  function jobsTable(jobs) {
    if (!Array.isArray(jobs) || jobs.length === 0) {
      return h('p', { class: 'empty', 'data-testid': 'jobs-empty' }, 'No jobs yet.');
    }
    return h('table', { class: 'table', 'data-testid': 'jobs-table' },
      h('thead', {}, h('tr', {}, ['job', 'name', 'status', 'round', 'accuracy', 'deposit', 'paid', 'slashed', 'remaining'].map((c) => h('th', {}, c)))),
      h('tbody', {}, [...jobs].sort((a, b) => b.job_id - a.job_id).map((j) =>
        h('tr', { 'data-testid': 'job-row', 'data-job-id': j.job_id },
          h('td', {}, h('a', { href: `#/jobs/${j.job_id}`, 'data-testid': 'job-link', 'data-job-id': j.job_id }, `#${j.job_id}`)),
          h('td', {}, j.name),
          h('td', {}, badge(j.status, 'job-row-status')),
          h('td', {}, `${j.round} / ${j.rounds}`),
          h('td', {}, pct(j.test_accuracy)),
          h('td', { class: 'num' }, money(j.deposit_wei)),
          h('td', { class: 'num' }, money(j.paid_wei)),
          h('td', { class: 'num' }, money(j.slashed_wei)),
          h('td', { class: 'num' }, money(j.remaining_wei))))));
  }

  function jobHeader(job) {
    const spec = job.spec || {};
    const facts = [
      ['round', `${job.round} / ${job.rounds}`],
      ['test accuracy', pct(job.test_accuracy)],
      ['model', spec.model],
      ['data set', spec.dataset],
      ['aggregation', spec.aggregation],
      ['owner', code(job.owner)],
      ['leader', code(job.leader)],
      ['spec', code(job.spec_hash)],
      ['latest checkpoint', code(job.latest_checkpoint, 'latest-checkpoint')],
      ['base reward', job.base_reward_wei ? money(job.base_reward_wei) : '—'],
      ['validation reward', job.validation_reward_wei ? money(job.validation_reward_wei) : '—'],
      ['paid to validators', job.validators_paid_wei ? money(job.validators_paid_wei, 'money-validators') : '—'],
    ];
    return [
      h('h1', {}, `Job #${job.job_id} · ${job.name} `, badge(job.status, 'job-status')),
      h('dl', { class: 'facts' }, facts.filter(([, v]) => v !== undefined && v !== null)
        .map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v)))),
    ];
  }

  function moneyCards(job) {
    let share = 0;
    try {
      const dep = BigInt(job.deposit_wei);
      if (dep > 0n) share = Number((BigInt(job.paid_wei) * 1000n) / dep) / 10;
    } catch (_) {
      share = 0;
    }
    return [
      h('div', { class: 'cards' },
        [['deposit', job.deposit_wei], ['paid', job.paid_wei], ['slashed', job.slashed_wei], ['remaining', job.remaining_wei]].map(([k, v]) =>
          h('div', { class: `card card-${k}` }, h('div', { class: 'card-label' }, k), h('div', { class: 'card-value' }, money(v, `money-${k}`))))),
      h('div', { class: 'bar', title: `${share}% of the deposit paid` }, h('div', { class: 'bar-paid', style: `width:${Math.min(100, share)}%` })),
    ];
  }

  function timeline(rounds) {
    if (!Array.isArray(rounds) || rounds.length === 0) {
      return h('p', { class: 'empty', 'data-testid': 'rounds-empty' }, 'No rounds yet.');
    }
    const sorted = [...rounds].sort((a, b) => a.round - b.round);
    const most = Math.max(1, ...sorted.map((r) => Math.max(r.leased, r.submitted)));
    const bar = (n, kind) => h('span', { class: `tl tl-${kind}`, style: `width:${(100 * n) / most}%`, title: `${n} ${kind}` });
    return h('table', { class: 'table timeline', 'data-testid': 'round-timeline' },
      h('thead', {}, h('tr', {}, ['round', 'status', 'leased', 'submitted', 'replayed', 'accepted', 'rejected', 'flow', 'test acc.', 'test loss', 'train loss', 'checkpoint'].map((c) => h('th', {}, c)))),
      h('tbody', {}, sorted.map((r) =>
        h('tr', { 'data-testid': 'round-row', 'data-round': r.round, 'data-status': r.status },
          h('td', {}, r.round),
          h('td', {}, badge(r.status)),
          ['leased', 'submitted', 'replayed', 'accepted', 'rejected'].map((k) => h('td', { class: 'num', 'data-field': k }, r[k])),
          h('td', { class: 'flow' },
            h('div', { class: 'tl-row' }, bar(r.leased, 'leased')),
            h('div', { class: 'tl-row' }, bar(r.submitted, 'submitted')),
            h('div', { class: 'tl-row' }, bar(r.accepted, 'accepted'), bar(r.rejected, 'rejected'))),
          h('td', { class: 'num' }, pct(r.test_accuracy)),
          h('td', { class: 'num' }, num(r.test_loss)),
          h('td', { class: 'num' }, num(r.train_loss)),
          h('td', {}, r.checkpoint_hash ? code(r.checkpoint_hash) : '—', r.commit_tx ? h('div', { class: 'sub' }, 'tx ', code(r.commit_tx)) : null)))));
  }

  // What each text checkpoint writes, newest first (text jobs only).
  function samples(rounds) {
    const withText = (Array.isArray(rounds) ? rounds : [])
      .filter((r) => typeof r.sample === 'string')
      .sort((a, b) => b.round - a.round);
    if (withText.length === 0) return null;
    return h('section', { 'data-testid': 'samples' }, h('h2', {}, 'Samples'),
      withText.map((r) => h('div', { class: 'sample', 'data-testid': 'sample', 'data-round': r.round },
        h('div', { class: 'sub' }, `checkpoint ${r.round + 1} · validation loss ${num(r.test_loss, 3)} · perplexity ${num(r.test_perplexity, 2)}`),
        h('pre', {}, r.sample))));
  }

  function updatesTable(updates) {
    if (!Array.isArray(updates) || updates.length === 0) {
      return h('p', { class: 'empty', 'data-testid': 'updates-empty' }, 'No updates yet.');
    }
    const sorted = [...updates].sort((a, b) => b.round - a.round || a.submitted_at - b.submitted_at);
    return h('table', { class: 'table', 'data-testid': 'updates-table' },
      h('thead', {}, h('tr', {}, ['round', 'trainer', 'update hash', 'shard', 'status', 'checked', 'staleness', 'task', 'votes', 'submit tx', 'vote txs', 'loss', 'paid', 'slashed'].map((c) => h('th', {}, c)))),
      h('tbody', {}, sorted.map((u) => {
        const votes = Array.isArray(u.votes) ? u.votes : [];
        const yes = votes.filter((v) => v.valid).length;
        return h('tr', {
          'data-testid': 'update-row',
          'data-update-index': u.update_index,
          'data-hash': u.update_hash,
          'data-trainer': u.trainer,
          'data-round': u.round,
          'data-status': u.status,
        },
        h('td', {}, u.round),
        h('td', {}, code(u.trainer)),
        h('td', {}, code(u.update_hash, 'update-hash')),
        h('td', { class: 'num' }, u.shard),
        h('td', {}, badge(u.status, 'update-status')),
        h('td', { 'data-testid': 'update-reason', title: 'why validators checked it (docs/security.md)' },
          u.replay ? (u.reason && u.reason !== 'none' ? u.reason : 'replayed') : '—'),
        h('td', { class: 'num', 'data-testid': 'update-staleness',
          title: `trained on checkpoint ${u.base_round}` + (u.merged_round != null ? `, merged in round ${u.merged_round}` : ', not merged (yet)') },
          u.merged_round != null ? String(u.merged_round - u.base_round) : '—'),
        h('td', { class: 'num', title: 'lease to report' }, `${u.task_seconds || 0} s`),
        h('td', { 'data-testid': 'update-verdicts', title: votes.map((v) => `${v.validator}: ${v.valid ? 'valid' : 'invalid'} ${v.detail || ''}`).join('\n') },
          votes.length ? [h('span', { class: 'yes' }, `✓${yes}`), ' ', h('span', { class: 'no' }, `✗${votes.length - yes}`)] : '—'),
        h('td', {}, code(u.submit_tx, 'submit-tx')),
        h('td', {}, votes.length ? votes.map((v) => h('div', {}, code(v.tx_hash, 'vote-tx'))) : '—'),
        h('td', { class: 'num' }, `${num(u.loss_before, 3)} → ${num(u.loss_after, 3)}`),
        h('td', { class: 'num' }, money(u.paid_wei, 'update-paid')),
        h('td', { class: 'num' }, money(u.slashed_wei)));
      })));
  }

  // Per trainer, from the orchestrator's lease and report times (whole
  // seconds): busy is the time it held at least one task (lease to report;
  // a stale:S trainer's tasks overlap), idle the gaps between its first
  // lease and its last report with none in hand, and the staleness of its
  // merged updates (docs/sync.md).
  function trainerStats(updates) {
    const by = new Map();
    for (const u of Array.isArray(updates) ? updates : []) {
      const end = Number(u.submitted_at) || 0;
      const start = end - (Number(u.task_seconds) || 0);
      const t = by.get(u.trainer) || { trainer: u.trainer, spans: [], tasks: 0, accepted: 0, stale: [] };
      t.spans.push([start, end]);
      t.tasks += 1;
      if (u.status === 'accepted') t.accepted += 1;
      if (u.merged_round != null) t.stale.push(u.merged_round - u.base_round);
      by.set(u.trainer, t);
    }
    return [...by.values()].map((t) => {
      t.spans.sort((a, b) => a[0] - b[0]);
      let busy = 0;
      let reach = -Infinity;
      for (const [a, b] of t.spans) {
        const from = Math.max(a, reach);
        if (b > from) busy += b - from;
        reach = Math.max(reach, b);
      }
      const span = reach - t.spans[0][0];
      const idle = Math.max(0, span - busy);
      const mean = t.stale.length ? t.stale.reduce((x, y) => x + y, 0) / t.stale.length : null;
      return { trainer: t.trainer, tasks: t.tasks, accepted: t.accepted, busy, idle,
        utilization: span > 0 ? busy / span : null, staleness: mean, maxStaleness: t.stale.length ? Math.max(...t.stale) : null };
    }).sort((a, b) => String(a.trainer).localeCompare(String(b.trainer)));
  }

  function trainersTable(updates) {
    const rows = trainerStats(updates);
    if (rows.length === 0) {
      return h('p', { class: 'empty', 'data-testid': 'trainers-empty' }, 'No updates yet.');
    }
    return h('table', { class: 'table', 'data-testid': 'trainers-table' },
      h('thead', {}, h('tr', {}, ['trainer', 'updates', 'accepted', 'busy', 'idle', 'utilisation', 'staleness (mean / max)'].map((c) => h('th', {}, c)))),
      h('tbody', {}, rows.map((t) =>
        h('tr', { 'data-testid': 'trainer-row', 'data-trainer': t.trainer },
          h('td', {}, code(t.trainer)),
          h('td', { class: 'num' }, t.tasks),
          h('td', { class: 'num' }, t.accepted),
          h('td', { class: 'num', 'data-field': 'busy', title: 'holding a task: lease to report' }, `${t.busy} s`),
          h('td', { class: 'num', 'data-field': 'idle', title: 'no task in hand, between its first lease and its last report' }, `${t.idle} s`),
          h('td', { class: 'num', 'data-field': 'utilization' }, pct(t.utilization)),
          h('td', { class: 'num', 'data-field': 'staleness' },
            t.staleness == null ? '—' : `${t.staleness.toFixed(2)} / ${t.maxStaleness}`)))));
  }

  // The chart is the orchestrator's SVG, inlined so its points are elements
  // of the page; fetched again whenever the rounds change.
  let chartGeneration = 0;
  async function loadChart(jobId, roundsKey) {
    const el = document.getElementById('charts');
    if (!el || el.dataset.roundsKey === roundsKey) return;
    el.dataset.roundsKey = roundsKey;
    const gen = ++chartGeneration;
    let answer;
    try {
      answer = await get(`/v1/jobs/${encodeURIComponent(jobId)}/charts.svg`, false);
    } catch (e) {
      delete el.dataset.roundsKey; // try again on the next poll
      return;
    }
    if (gen !== chartGeneration || !document.body.contains(el)) return;
    const doc = answer.ok ? new DOMParser().parseFromString(answer.text, 'image/svg+xml') : null;
    const root = doc && doc.documentElement;
    if (!root || root.nodeName !== 'svg' || doc.getElementsByTagName('parsererror').length) {
      el.replaceChildren(h('p', { class: 'empty', 'data-testid': 'charts-unavailable' }, `Charts unavailable (${answer.status}).`));
      return;
    }
    root.removeAttribute('width');
    root.removeAttribute('height');
    root.setAttribute('class', 'chart');
    el.replaceChildren(document.importNode(root, true));
    el.dataset.points = String(el.querySelectorAll('[data-testid=accuracy-point]').length);
  }

  // ---- participants ------------------------------------------------------

  function participantsTable(people, now) {
    if (!Array.isArray(people) || people.length === 0) {
      return h('p', { class: 'empty', 'data-testid': 'participants-empty' }, 'No participants yet.');
    }
    return h('table', { class: 'table', 'data-testid': 'participants-table' },
      h('thead', {}, h('tr', {}, ['address', 'roles', 'stake', 'credit', 'earned', 'slashed', 'accepted', 'rejected', 'votes', 'effective compute (ut)', 'capacity', 'last seen'].map((c) => h('th', {}, c)))),
      h('tbody', {}, [...people].sort((a, b) => (b.reputation || 0) - (a.reputation || 0) || String(a.address).localeCompare(String(b.address))).map((p) =>
        h('tr', { 'data-testid': 'participant-row', 'data-address': p.address, 'data-roles': (p.roles || []).join(' ') },
          h('td', {}, code(p.address)),
          h('td', {}, (p.roles || []).map((r) => h('span', { class: `role role-${r}` }, r))),
          h('td', { class: 'num' }, money(p.stake_wei, 'participant-stake')),
          h('td', { class: 'num' }, money(p.credit_wei, 'participant-credit')),
          h('td', { class: 'num' }, money(p.earned_wei)),
          h('td', { class: 'num' }, money(p.slashed_wei)),
          h('td', { class: 'num', 'data-field': 'accepted' }, p.accepted),
          h('td', { class: 'num', 'data-field': 'rejected' }, p.rejected),
          h('td', { class: 'num' }, p.validations),
          h('td', { class: 'num', 'data-field': 'reputation' }, num(p.reputation, 4)),
          h('td', {}, p.capacity || '—'),
          h('td', { class: now - p.last_seen > IDLE_SECS ? 'idle-text' : '' }, ago(p.last_seen, now))))));
  }

  // ---- routes ------------------------------------------------------------

  const routes = {
    network: {
      mount: () => [
        h('section', {}, h('h2', {}, 'Network'), h('div', { id: 'graph-box', class: 'graph-box' }), graphLegend()),
        h('section', {}, h('h2', {}, 'Jobs'), h('div', { id: 'jobs' })),
      ],
      urls: () => ['/graph', '/v1/jobs'],
      render([graph, jobs], now) {
        // The idle colouring depends on the clock, so the graph redraws every few seconds too.
        section('graph-box', `${graph.text}|${Math.floor(now / 5)}`, () => graphView(graph.data, now));
        section('jobs', jobs.text, () => jobsTable(jobs.data));
      },
    },
    jobs: {
      mount: () => [h('section', {}, h('h2', {}, 'Jobs'), h('div', { id: 'jobs' }))],
      urls: () => ['/v1/jobs'],
      render([jobs]) {
        section('jobs', jobs.text, () => jobsTable(jobs.data));
      },
    },
    job: {
      mount: () => [
        h('section', { id: 'job-header', class: 'job-header' }),
        h('section', {}, h('h2', {}, 'Money'), h('div', { id: 'money' })),
        h('section', {}, h('h2', {}, 'Curves'), h('div', { id: 'charts', class: 'charts', 'data-testid': 'charts' }, h('p', { class: 'empty' }, 'Loading charts…'))),
        h('div', { id: 'samples' }),
        h('section', {}, h('h2', {}, 'Rounds'), h('div', { id: 'rounds' })),
        h('section', {}, h('h2', {}, 'Trainers'), h('div', { id: 'trainers' })),
        h('section', {}, h('h2', {}, 'Updates'), h('div', { id: 'updates' })),
      ],
      urls: (id) => [`/v1/jobs/${encodeURIComponent(id)}`, `/v1/jobs/${encodeURIComponent(id)}/rounds`, `/v1/jobs/${encodeURIComponent(id)}/updates`],
      render([job, rounds, updates], now, id) {
        if (!job.ok || !job.data) {
          section('job-header', `missing|${job.status}`, () => [
            h('h1', {}, `Job #${id}`),
            h('p', { class: 'empty', 'data-testid': 'job-missing' }, job.status === 404 ? 'No such job.' : `The orchestrator answered ${job.status}.`),
          ]);
          return;
        }
        section('job-header', job.text, () => jobHeader(job.data));
        section('money', job.text, () => moneyCards(job.data));
        section('samples', rounds.text, () => samples(rounds.data));
        section('rounds', rounds.text, () => timeline(rounds.data));
        section('trainers', updates.text, () => trainersTable(updates.data));
        section('updates', updates.text, () => updatesTable(updates.data));
        loadChart(id, rounds.text);
      },
    },
    participants: {
      mount: () => [h('section', {}, h('h2', {}, 'Participants'), h('div', { id: 'participants' }))],
      urls: () => ['/v1/participants'],
      render([people], now) {
        section('participants', `${people.text}|${Math.floor(now / 5)}`, () => participantsTable(people.data, now));
      },
    },
  };

  function parseRoute() {
    const path = (location.hash || '#/').replace(/^#/, '');
    const job = path.match(/^\/jobs\/(\d+)\/?$/);
    if (job) return { name: 'job', id: job[1], key: `job:${job[1]}` };
    if (/^\/jobs\/?$/.test(path)) return { name: 'jobs', key: 'jobs' };
    if (/^\/participants\/?$/.test(path)) return { name: 'participants', key: 'participants' };
    return { name: 'network', key: 'network' };
  }

  let mounted = null;
  function mount(route) {
    const view = document.getElementById('view');
    sectionKeys.clear();
    chartGeneration++;
    view.dataset.view = route.name;
    view.replaceChildren(...routes[route.name].mount(route.id));
    for (const a of document.querySelectorAll('[data-nav]')) {
      a.classList.toggle('active', a.dataset.nav === route.name || (route.name === 'job' && a.dataset.nav === 'jobs'));
    }
    mounted = route.key;
  }

  // ---- the poll loop -----------------------------------------------------

  // One poll at a time; a route change starts a fresh one at once, and only
  // the latest poll draws or schedules the next.
  let timer = null;
  let seq = 0;
  async function tick() {
    clearTimeout(timer);
    const mine = ++seq;
    try {
      const route = parseRoute();
      if (route.key !== mounted) mount(route);
      const spec = routes[route.name];
      const answers = await Promise.all(spec.urls(route.id).map((u) => get(u)));
      if (mine === seq) {
        setReachable(true);
        spec.render(answers, live.serverNow, route.id);
      }
    } catch (e) {
      if (mine !== seq) return;
      if (e instanceof Unreachable) setReachable(false, e.message);
      else console.error(e);
    } finally {
      if (mine === seq) timer = setTimeout(tick, POLL_MS);
    }
  }

  window.addEventListener('hashchange', tick);
  tick();
})();
