// The drawing pad of mnist_basics: one ES module for two hosts.
// In Jupyter, anywidget calls `render({model, el})` with a widget model whose Python side (mnist_basics.pad.DigitPad)
// prepares the strokes and predicts. On the site (tools/docs/try_page.py), a small host script passes a model object of its
// own that does the same in plain JavaScript with the functions exported below: `drawStrokes` (as PIL draws
// `draw_strokes`), `prepareDigit` (as `prepare_digit`), `digitDoubt` (as `digit_doubt`) and `forward` (the lessons' models).
//
// Hooks for tests: the canvas `#digit-pad` (class `digit-pad`), the prepared image `#digit-prepared` (class `digit-prepared`),
// the predicted digit as the text of `[data-prediction]`, the probabilities as JSON in `[data-probs]`, the message `[data-message]`.

export const SIZE = 400, WIDTH = 24; // the pad in pixels and the pen's width: `draw_strokes`'s defaults
const MIN_CONTRAST = 0.1, NOISE_FLOOR = 0.1, INK_THRESHOLD = 0.3, SPECK_FRACTION = 0.001, BORDER_SAMPLES = 2048;
const MIN_BACKGROUND = 0.18, MAX_GREY = 0.6;
const f32 = Math.fround;

// ---------------------------------------------------------------- rasterising the strokes as PIL's `draw_strokes` does

function roundUp(f) { return f >= 0 ? Math.floor(f + 0.5) : -Math.floor(Math.abs(f) + 0.5); }
function roundDown(f) { return f >= 0 ? Math.ceil(f - 0.5) : -Math.ceil(Math.abs(f) - 0.5); }

function fillPolygon(ink, w, h, pts) { // pixels whose centre lies inside or on the convex polygon `pts`
  const ys = pts.map(p => p[1]), y0 = Math.max(0, Math.ceil(Math.min(...ys))), y1 = Math.min(h - 1, Math.floor(Math.max(...ys)));
  for (let y = y0; y <= y1; y++) {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < pts.length; i++) {
      const [ax, ay] = pts[i], [bx, by] = pts[(i + 1) % pts.length];
      if ((y < Math.min(ay, by)) || (y > Math.max(ay, by))) continue;
      if (ay === by) { lo = Math.min(lo, ax, bx); hi = Math.max(hi, ax, bx); continue; }
      const x = ax + (y - ay) * (bx - ax) / (by - ay);
      lo = Math.min(lo, x); hi = Math.max(hi, x);
    }
    const xa = Math.max(0, roundUp(lo)), xb = Math.min(w - 1, roundDown(hi)); // as Pillow rounds a scan line's ends
    for (let x = xa; x <= xb; x++) ink[y * w + x] = 1;
  }
}

function fillPie(ink, w, h, cx, cy, r, start, end) { // Pillow's pieslice of the box (cx ± r, cy ± r) from `start` to `end` degrees
  const t = (r + 1) ** 2 + 1; // the pixels of Pillow's disc of 2r + 1 pixels (checked for the pen's width, 24)
  const s = ((start % 360) + 360) % 360; let e = ((end % 360) + 360) % 360; if (e <= s) e += 360;
  for (let y = Math.max(0, cy - r); y <= Math.min(h - 1, cy + r); y++)
    for (let x = Math.max(0, cx - r); x <= Math.min(w - 1, cx + r); x++) {
      const dx = x - cx, dy = y - cy;
      if ((Math.abs(dx) + 0.5) ** 2 + (Math.abs(dy) + 0.5) ** 2 > t) continue;
      let a = ((Math.atan2(dy, dx) * 180 / Math.PI) % 360 + 360) % 360; if (a < s) a += 360;
      if ((dx === 0 && dy === 0) || a <= e) ink[y * w + x] = 1;
    }
}

function wideLine(ink, w, h, x0, y0, x1, y1, width) { // the quadrilateral of Pillow's ImagingDrawWideLine
  const dx = x1 - x0, dy = y1 - y0;
  if (dx === 0 && dy === 0) { if (x0 >= 0 && x0 < w && y0 >= 0 && y0 < h) ink[y0 * w + x0] = 1; return; }
  const big = Math.hypot(dx, dy), small = (width - 1) / 2;
  const rmax = roundUp(small) / big, rmin = roundDown(small) / big;
  const dxmin = roundDown(rmin * dy), dxmax = roundDown(rmax * dy), dymin = roundDown(rmin * dx), dymax = roundDown(rmax * dx);
  fillPolygon(ink, w, h, [[x0 - dxmin, y0 + dymax], [x1 - dxmin, y1 + dymax], [x1 + dxmax, y1 - dymin], [x0 + dxmax, y0 - dymin]]);
}

function joint(ink, size, a, p, b, width) { // what `ImageDraw.line(..., joint='curve')` adds at an inner point `p`
  const deg = (s, e) => (((Math.atan2(e[0] - s[0], s[1] - e[1]) * 180 / Math.PI) % 360) + 360) % 360;
  const a0 = deg(a, p), a1 = deg(p, b);
  if (a0 === a1) return;
  const flipped = (a1 > a0 && a1 - 180 > a0) || (a1 < a0 && a1 + 180 > a0);
  const [start, end] = flipped ? [a1 + 90, a0 + 90] : [a0 - 90, a1 - 90];
  fillPie(ink, size, size, p[0], p[1], width / 2 - 1, start - 90, end - 90);
  if (width > 8) { // Pillow's cover for gaps between the line and the joint: a polyline of width 3
    const at = ang => { const r = (ang - 90) * Math.PI / 180, d = width / 2 - 1, f = v => v > 0 ? Math.floor(v) : Math.ceil(v);
      return [p[0] + f(d * Math.cos(r)), p[1] + f(d * Math.sin(r))]; };
    const g = flipped ? [at(a0 + 90), p, at(a1 + 90)] : [at(a0 - 90), p, at(a1 - 90)];
    for (let i = 0; i + 1 < g.length; i++) wideLine(ink, size, size, g[i][0], g[i][1], g[i + 1][0], g[i + 1][1], 3);
  }
}

/** The strokes (lists of [x, y] points) as `draw_strokes` draws them: 1 for ink, 0 for paper, `size`×`size`, row by row */
export function drawStrokes(strokes, size = SIZE, width = WIDTH) {
  const ink = new Uint8Array(size * size);
  for (const s of strokes) {
    const p = s.map(([x, y]) => [Math.trunc(x), Math.trunc(y)]);
    for (let i = 0; i + 1 < p.length; i++) wideLine(ink, size, size, p[i][0], p[i][1], p[i + 1][0], p[i + 1][1], width);
    for (let i = 1; i + 1 < p.length; i++) joint(ink, size, p[i - 1], p[i], p[i + 1], width); // joint='curve'
  }
  return ink;
}

// ---------------------------------------------------------------- preparing the digit as `prepare_digit` does

function roundHalfEven(x) { const r = Math.round(x); return (Math.abs(x % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r; }
function median(xs) { const s = Float64Array.from(xs).sort(), n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; }

function border(a, h, w) { // `_border`: the border pixels (top, bottom, left, right) with their (u, v) in 0…1
  const lin = (n, k) => Array.from({length: k}, (_, i) => k === 1 ? 0 : roundHalfEven(i * (n - 1) / (k - 1)));
  const c = lin(w, Math.min(w, BORDER_SAMPLES)), r = lin(h, Math.min(h, BORDER_SAMPLES));
  const b = [], u = [], v = [];
  for (const x of c) { b.push(a[x]); u.push(x / Math.max(w - 1, 1)); v.push(0); }
  for (const x of c) { b.push(a[(h - 1) * w + x]); u.push(x / Math.max(w - 1, 1)); v.push(1); }
  for (const y of r) { b.push(a[y * w]); u.push(0); v.push(y / Math.max(h - 1, 1)); }
  for (const y of r) { b.push(a[y * w + w - 1]); u.push(1); v.push(y / Math.max(h - 1, 1)); }
  return [b, u, v];
}

function solve4(A, y) { // least squares by the normal equations (Gaussian elimination with pivoting)
  const M = [0, 1, 2, 3].map(i => [0, 1, 2, 3].map(j => A.reduce((s, row) => s + row[i] * row[j], 0)).concat([A.reduce((s, row, k) => s + row[i] * y[k], 0)]));
  for (let i = 0; i < 4; i++) {
    let p = i; for (let k = i + 1; k < 4; k++) if (Math.abs(M[k][i]) > Math.abs(M[p][i])) p = k;
    [M[i], M[p]] = [M[p], M[i]];
    if (Math.abs(M[i][i]) < 1e-12) { M[i][i] = 1; for (let j = 0; j < 5; j++) if (j !== i) M[i][j] = 0; continue; }
    for (let k = 0; k < 4; k++) if (k !== i) { const f = M[k][i] / M[i][i]; for (let j = i; j < 5; j++) M[k][j] -= f * M[i][j]; }
  }
  return M.map((row, i) => row[4] / row[i]);
}

function paperLevel(a, h, w) { // `paper_level`: a bilinear surface fitted robustly to the border, float32
  const [b, bu, bv] = border(a, h, w);
  const X = b.map((_, i) => [1, bu[i], bv[i], bu[i] * bv[i]]);
  let keep = b.map(() => true), p;
  for (let it = 0; it < 2; it++) {
    const idx = keep.flatMap((k, i) => k ? [i] : []);
    p = solve4(idx.map(i => X[i]), idx.map(i => b[i]));
    const r = X.map((row, i) => b[i] - (row[0] * p[0] + row[1] * p[1] + row[2] * p[2] + row[3] * p[3]));
    const tol = 3 * Math.max(median(r.map(Math.abs)), 1 / 255);
    keep = r.map(x => Math.abs(x) <= tol);
  }
  const q = p.map(f32), out = new Float32Array(h * w);
  for (let x = 0; x < w; x++) {
    const u = f32(w === 1 ? 0 : x / (w - 1)), top = f32(q[0] + f32(q[1] * u)), slope = f32(q[2] + f32(q[3] * u));
    for (let y = 0; y < h; y++) out[y * w + x] = f32(top + f32(slope * f32(h === 1 ? 0 : y / (h - 1))));
  }
  return out;
}

/** `ink_only`: ink bright (up to 1) on black, measured against the paper; throws "no ink" as the library does */
export function inkOnly(a, h, w) {
  let mn = Infinity, mx = -Infinity;
  for (const x of a) { mn = Math.min(mn, x); mx = Math.max(mx, x); }
  const paper = paperLevel(a, h, w), out = new Float32Array(a.length), light = median(border(a, h, w)[0]) > (mn + mx) / 2;
  const floor = f32(1 / 255);
  for (let i = 0; i < a.length; i++) out[i] = Math.max(0, light ? f32(1 - f32(a[i] / Math.max(paper[i], floor))) : f32(a[i] - paper[i]));
  const m = out.reduce((s, x) => Math.max(s, x), 0);
  if (m < MIN_CONTRAST) throw new Error('the drawing has no ink: nothing in it stands out from the background (a blank page?)');
  for (let i = 0; i < out.length; i++) out[i] = Math.min(1, Math.max(0, f32(f32(f32(out[i] / m) - f32(NOISE_FLOOR)) / f32(1 - NOISE_FLOOR))));
  return out;
}

function span(counts, trim) { // `_span`
  const c = []; let s = 0; for (const x of counts) c.push(s += x);
  const last = c[c.length - 1];
  let lo = 0; while (lo < c.length && c[lo] <= trim) lo++;
  let hi = 0; while (hi < c.length && c[hi] < last - trim) hi++;
  return [lo, hi];
}

/** `crop_ink`: the box [r0, r1, c0, c1] (inclusive) of the pixels above `INK_THRESHOLD`, but for stray specks */
export function inkBox(a, h, w) {
  const t = f32(INK_THRESHOLD), rows = new Array(h).fill(0), cols = new Array(w).fill(0);
  let n = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) if (a[y * w + x] > t) { rows[y]++; cols[x]++; n++; }
  const trim = Math.trunc(SPECK_FRACTION * n);
  return [...span(rows, trim), ...span(cols, trim)];
}

function lanczos(x) {
  const sinc = x => { if (x === 0) return 1; x *= Math.PI; return Math.sin(x) / x; };
  return (-3 <= x && x < 3) ? sinc(x) * sinc(x / 3) : 0;
}

function coeffs(inSize, outSize) { // Pillow's precompute_coeffs for the Lanczos filter
  const scale = inSize / outSize, fs = Math.max(scale, 1), support = 3 * fs, res = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5)), xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const k = []; let ww = 0;
    for (let x = 0; x < xmax; x++) { const v = lanczos((x + xmin - center + 0.5) / fs); k.push(v); ww += v; }
    res.push([xmin, ww !== 0 ? k.map(v => v / ww) : k]);
  }
  return res;
}

function resize(a, h, w, nh, nw) { // Pillow's `resize(..., LANCZOS)` of a mode 'F' image: horizontal pass, then vertical
  const ch = coeffs(w, nw), cv = coeffs(h, nh);
  let src = a, sw = w;
  if (nw !== w) {
    const y0 = cv[0][0], y1 = cv[nh - 1][0] + cv[nh - 1][1].length, tmp = new Float32Array((y1 - y0) * nw);
    for (let y = y0; y < y1; y++) for (let xx = 0; xx < nw; xx++) {
      const [xmin, k] = ch[xx]; let s = 0;
      for (let x = 0; x < k.length; x++) s += a[y * w + xmin + x] * k[x];
      tmp[(y - y0) * nw + xx] = s;
    }
    src = tmp; sw = nw; for (const c of cv) c[0] -= y0;
  }
  if (nh === h && nw === w) return Float32Array.from(a);
  if (nh === h && src !== a) return src;
  const out = new Float32Array(nh * nw);
  for (let yy = 0; yy < nh; yy++) { const [ymin, k] = cv[yy];
    for (let x = 0; x < nw; x++) { let s = 0; for (let y = 0; y < k.length; y++) s += src[(ymin + y) * sw + x] * k[y]; out[yy * nw + x] = s; } }
  return out;
}

/** `fit_box`: the cropped digit scaled (Lanczos) so its longer side is `size`, brightest pixel 1: [pixels, height, width] */
export function fitBox(a, h, w, size = 20) {
  const s = size / Math.max(h, w), nw = Math.max(1, roundHalfEven(w * s)), nh = Math.max(1, roundHalfEven(h * s));
  const r = resize(a, h, w, nh, nw).map(x => Math.min(1, Math.max(0, x)));
  const m = r.reduce((s, x) => Math.max(s, x), 0);
  return [m > 0 ? r.map(x => f32(x / m)) : r, nh, nw];
}

/** `centre_of_mass`: (row, column) of the brightness-weighted mean position */
export function centreOfMass(a, h, w) {
  let m = 0, r = 0, c = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) { const v = a[y * w + x]; m += v; r += v * y; c += v * x; }
  return [r / m, c / m];
}

/** `centre_digit`: placed in a black 28×28 square with its centre of mass at (14, 14): [pixels, top, left, com] */
export function centreDigit(a, h, w, size = 28) {
  const [r, c] = centreOfMass(a, h, w);
  const clip = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const top = clip(roundHalfEven(Math.floor(size / 2) - r), 0, size - h), left = clip(roundHalfEven(Math.floor(size / 2) - c), 0, size - w);
  const out = new Float32Array(size * size);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[(top + y) * size + left + x] = a[y * w + x];
  return [out, top, left, [r, c]];
}

/** `prepare_digit` for a drawing (1 = ink): the 784 pixels and the steps (ink box, 20×20 fit, placement), or throws "no ink" */
export function prepareDigit(ink, h = SIZE, w = SIZE) {
  const gray = Float32Array.from(ink, v => 1 - v);
  const a = inkOnly(gray, h, w), [r0, r1, c0, c1] = inkBox(a, h, w), ch = r1 - r0 + 1, cw = c1 - c0 + 1;
  const crop = new Float32Array(ch * cw);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = a[(r0 + y) * w + c0 + x];
  const [fit, fh, fw] = fitBox(crop, ch, cw);
  const [x, top, left, com] = centreDigit(fit, fh, fw);
  return {x, steps: {box: [r0, r1, c0, c1], fit: Array.from(fit), fit_shape: [fh, fw], offset: [top, left], com}};
}

/** `ink_measures` and `digit_doubt`: why the prepared digit does not look like pen strokes, or null */
export function digitDoubt(x) {
  let r0 = 28, r1 = -1, c0 = 28, c1 = -1;
  for (let y = 0; y < 28; y++) for (let c = 0; c < 28; c++) if (x[y * 28 + c] > 0.5) { r0 = Math.min(r0, y); r1 = Math.max(r1, y); c0 = Math.min(c0, c); c1 = Math.max(c1, c); }
  if (r1 < 0) return 'it has almost no ink';
  let bg = 0, n = 0, inked = 0, grey = 0;
  for (let y = r0; y <= r1; y++) for (let c = c0; c <= c1; c++) { n++; if (x[y * 28 + c] < f32(0.1)) bg++; }
  for (const v of x) if (v > f32(0.1)) { inked++; if (v < 0.5) grey++; }
  if (bg / n < MIN_BACKGROUND) return 'its ink fills its box, like a blob, a bar or noise, not pen strokes';
  if (grey / inked > MAX_GREY) return 'its ink is mostly grey smudges, like noise or a photo, not pen strokes';
  return null;
}

// ---------------------------------------------------------------- the lessons' models, forward in plain JavaScript

function dense(x, W, b, nIn, nOut) { // x (nIn) @ W (nIn×nOut, row-major) + b
  const out = new Float64Array(nOut);
  for (let j = 0; j < nOut; j++) out[j] = b[j];
  for (let i = 0; i < nIn; i++) { const v = x[i]; if (v === 0) continue; for (let j = 0; j < nOut; j++) out[j] += v * W[i * nOut + j]; }
  return out;
}

function convBlock(x, C, H, W, p) { // k×k convolution (k = p.k, 3 if absent), stride 2, padding k>>1, no bias; BatchNorm (running statistics); ReLU
  const {w, co, mean, vr, gamma, beta, eps} = p, k = p.k || 3, pad = k >> 1;
  const Ho = Math.floor((H + 2 * pad - k) / 2) + 1, Wo = Math.floor((W + 2 * pad - k) / 2) + 1;
  const out = new Float64Array(co * Ho * Wo);
  for (let o = 0; o < co; o++) {
    const scale = gamma[o] / Math.sqrt(vr[o] + eps), shift = beta[o] - mean[o] * scale;
    for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
      let s = 0;
      for (let c = 0; c < C; c++) for (let ki = 0; ki < k; ki++) { const y = 2 * i - pad + ki; if (y < 0 || y >= H) continue;
        for (let kj = 0; kj < k; kj++) { const xx = 2 * j - pad + kj; if (xx < 0 || xx >= W) continue;
          s += x[(c * H + y) * W + xx] * w[((o * C + c) * k + ki) * k + kj]; } }
      out[(o * Ho + i) * Wo + j] = Math.max(0, s * scale + shift);
    }
  }
  return [out, co, Ho, Wo];
}

/** The model's scores for the 784 pixels `x`: `m.kind` 'linear' (weights, bias), 'net' (w1, b1, w2, b2) or 'cnn' (blocks, fc) */
export function forward(m, x) {
  if (m.kind === 'linear') return Array.from(dense(x, m.weights, m.bias, 784, m.n_out));
  if (m.kind === 'net') {
    const h = dense(x, m.w1, m.b1, 784, m.n_hidden).map(v => Math.max(0, v));
    return Array.from(dense(h, m.w2, m.b2, m.n_hidden, m.n_out));
  }
  let a = Float64Array.from(x), C = 1, H = 28, W = 28;
  for (const blk of m.blocks) [a, C, H, W] = convBlock(a, C, H, W, blk);
  const pooled = new Float64Array(C);
  for (let c = 0; c < C; c++) { let s = 0; for (let k = 0; k < H * W; k++) s += a[c * H * W + k]; pooled[c] = s / (H * W); }
  return Array.from(dense(pooled, m.fc_w, m.fc_b, C, m.n_out));
}

/** Probabilities from scores: sigmoid for a two-digit model (one score, for the first digit), softmax otherwise */
export function probabilities(scores) {
  if (scores.length === 1) { const p = 1 / (1 + Math.exp(-scores[0])); return [p, 1 - p]; }
  const mx = Math.max(...scores), e = scores.map(s => Math.exp(s - mx)), t = e.reduce((a, b) => a + b, 0);
  return e.map(v => v / t);
}


// ---------------------------------------------------------------- from strokes to an answer, as `read_strokes` does in Python

export const NO_INK = 'Draw a digit: the pad has no ink yet.';
export const NO_CONTRAST = 'Nothing on the pad stands out from the background (ink everywhere?): clear it and draw a digit.';
export const TOO_SMALL = 'That is a dot, not a digit: draw the digit larger.';
const MIN_EXTENT = 2;

/** What the pad shows for `strokes` with model `m` (see `forward`; `m.digits` its digits): the dict `read_strokes` returns */
export function readStrokes(strokes, m, size = SIZE, width = WIDTH) {
  const res = {prepared: new Array(784).fill(0), probs: [], digits: m.digits.slice(), prediction: '', message: '', doubt: null, steps: null, contributions: null};
  const s = strokes.map(st => st.map(([x, y]) => [Math.trunc(x), Math.trunc(y)]));
  if (!s.some(st => st.length > 1)) return {...res, message: NO_INK};
  let prep;
  try { prep = prepareDigit(drawStrokes(s, size, width), size, size); } catch (e) { return {...res, message: NO_CONTRAST}; }
  res.prepared = Array.from(prep.x); res.steps = prep.steps;
  const [r0, r1, c0, c1] = prep.steps.box;
  if (Math.max(r1 - r0, c1 - c0) + 1 < MIN_EXTENT * width) return {...res, doubt: 'a dot', message: TOO_SMALL};
  const doubt = digitDoubt(prep.x);
  if (doubt) return {...res, doubt, message: `This does not look like a handwritten digit: ${doubt}. Clear and try again.`};
  res.probs = probabilities(forward(m, prep.x));
  res.prediction = m.digits[res.probs.indexOf(Math.max(...res.probs))];
  if (m.kind === 'linear' && m.digits.length === 2) res.contributions = res.prepared.map((v, i) => v * m.weights[i]);
  if (s.some(st => st.some(p => p.some(v => v < 0 || v >= size)))) res.message = 'Part of a stroke left the pad: that part is not in the picture.';
  return res;
}

// ---------------------------------------------------------------- the pad (shared by both hosts)

const CSS = `
.digit-pad-widget { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; font: 14px system-ui, sans-serif; color: #222; }
.digit-pad-widget .dp-col { display: flex; flex-direction: column; gap: 6px; }
.digit-pad-widget canvas.digit-pad { width: 280px; height: 280px; border: 1px solid #888; border-radius: 4px; background: #fff;
  touch-action: none; cursor: crosshair; }
.digit-pad-widget canvas.dp-img { width: 112px; height: 112px; image-rendering: pixelated; border: 1px solid #888; background: #000; }
.digit-pad-widget .dp-pred { font-size: 40px; font-weight: 600; min-height: 48px; }
.digit-pad-widget .dp-msg { max-width: 280px; min-height: 1.2em; color: #a33; }
.digit-pad-widget .dp-bars { display: grid; grid-template-columns: 1.5em 120px 4em; gap: 2px 6px; align-items: center; }
.digit-pad-widget .dp-bar { height: 10px; background: #3f51b5; }
.digit-pad-widget button { width: fit-content; padding: 2px 12px; border: 1px solid #888; border-radius: 4px; background: #f4f4f4; color: #222; cursor: pointer; }
.digit-pad-widget .dp-steps { display: flex; gap: 8px; flex-basis: 100%; align-items: flex-end; }
.digit-pad-widget .dp-steps figure { margin: 0; text-align: center; font-size: 12px; }
`;

function el_(tag, attrs = {}, parent = null) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) { if (k === 'text') e.textContent = v; else e.setAttribute(k, v); }
  if (parent) parent.appendChild(e);
  return e;
}

function paintGray(canvas, data, h, w, signed = false) { // 0…1 as black…white (signed: -1…1 as red…blue)
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d'), im = ctx.createImageData(w, h);
  const m = signed ? Math.max(1e-9, ...data.map(Math.abs)) : 1;
  for (let i = 0; i < h * w; i++) {
    const v = data[i] / m;
    const [r, g, b] = signed ? (v > 0 ? [255 * (1 - v), 255 * (1 - v), 255] : [255, 255 * (1 + v), 255 * (1 + v)]) : [255 * v, 255 * v, 255 * v];
    im.data.set([r, g, b, 255], 4 * i);
  }
  ctx.putImageData(im, 0, 0);
}

/** anywidget's entry point: the pad in `el`, talking to `model` (traits `strokes`, `result`, `size`, `width`) */
export function render({model, el}) {
  const size = model.get('size') || SIZE, width = model.get('width') || WIDTH;
  el.classList.add('digit-pad-widget');
  el_('style', {text: CSS}, el);
  const left = el_('div', {class: 'dp-col'}, el), mid = el_('div', {class: 'dp-col'}, el), right = el_('div', {class: 'dp-col'}, el);
  const pad = el_('canvas', {id: 'digit-pad', class: 'digit-pad', width: size, height: size, 'aria-label': 'draw a digit here'}, left);
  const clear = el_('button', {type: 'button', class: 'dp-clear', text: 'Clear'}, left);
  el_('div', {text: 'prepared, 28×28'}, mid);
  const prepared = el_('canvas', {id: 'digit-prepared', class: 'digit-prepared dp-img', width: 28, height: 28}, mid);
  const contrib = el_('canvas', {class: 'digit-contrib dp-img', width: 28, height: 28, title: 'weight × pixel: blue for 3, red for 7'}, mid);
  const contribLabel = el_('div', {class: 'dp-contrib-label', text: 'weight × pixel (blue: 3, red: 7)'}, mid);
  contrib.style.display = contribLabel.style.display = 'none';
  const pred = el_('div', {class: 'dp-pred', 'data-prediction': '', text: ''}, right);
  const msg = el_('div', {class: 'dp-msg', 'data-message': '', role: 'status', text: 'Draw a digit.'}, right);
  const bars = el_('div', {class: 'dp-bars', 'data-probs': '[]'}, right);
  const steps = el_('div', {class: 'dp-steps'}, el);
  const ctx = pad.getContext('2d');
  let strokes = [], drawing = null, timer = null;

  function paint() {
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, size, size);
    ctx.strokeStyle = '#000'; ctx.fillStyle = '#000'; ctx.lineWidth = width; ctx.lineCap = 'butt'; ctx.lineJoin = 'round';
    for (const s of strokes) {
      ctx.beginPath(); s.forEach(([x, y], i) => i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)); ctx.stroke();
    }
    const box = (model.get('result') || {}).steps?.box;
    if (box && strokes.length) { ctx.strokeStyle = '#e91e63'; ctx.lineWidth = 2; ctx.strokeRect(box[2] - 1, box[0] - 1, box[3] - box[2] + 2, box[1] - box[0] + 2); }
  }
  function send(now) {
    clearTimeout(timer);
    pad.dataset.strokes = JSON.stringify(strokes);
    const go = () => { model.set('strokes', strokes.map(s => s.map(p => p.slice()))); model.save_changes(); };
    if (now) go(); else timer = setTimeout(go, 120); // live while drawing, at most every 120 ms
  }
  function point(e) {
    const r = pad.getBoundingClientRect();
    return [Math.round((e.clientX - r.left) * size / r.width), Math.round((e.clientY - r.top) * size / r.height)];
  }
  pad.addEventListener('pointerdown', e => {
    e.preventDefault();
    try { pad.setPointerCapture(e.pointerId); } catch (err) { /* a synthetic pointer cannot be captured */ }
    drawing = [point(e)]; strokes.push(drawing); paint();
  });
  pad.addEventListener('pointermove', e => {
    if (!drawing) return;
    const p = point(e), q = drawing[drawing.length - 1];
    if (p[0] === q[0] && p[1] === q[1]) return;
    drawing.push(p); paint(); send(false);
  });
  const up = () => { if (!drawing) return; drawing = null; send(true); };
  pad.addEventListener('pointerup', up); pad.addEventListener('pointercancel', up);
  clear.addEventListener('click', () => { strokes = []; paint(); send(true); });

  function show() {
    const res = model.get('result') || {};
    const probs = res.probs || [], digits = res.digits || [];
    pred.textContent = res.prediction ?? '';
    pred.dataset.prediction = res.prediction ?? '';
    msg.textContent = res.message || (strokes.length ? '' : 'Draw a digit.');
    bars.dataset.probs = JSON.stringify(probs);
    bars.dataset.digits = JSON.stringify(digits);
    bars.replaceChildren();
    probs.forEach((p, i) => {
      el_('span', {text: digits[i]}, bars);
      const b = el_('div', {class: 'dp-bar'}, bars); b.style.width = `${Math.round(120 * p)}px`;
      el_('span', {text: `${(100 * p).toFixed(1)}%`}, bars);
    });
    paintGray(prepared, res.prepared || new Array(784).fill(0), 28, 28);
    prepared.dataset.pixels = JSON.stringify((res.prepared || []).map(v => Math.round(v * 1e6) / 1e6));
    const c = res.contributions;
    contrib.style.display = contribLabel.style.display = c ? '' : 'none';
    if (c) paintGray(contrib, c, 28, 28, true);
    steps.replaceChildren();
    const st = res.steps;
    if (st && st.fit) {
      const add = (label, draw) => { const f = el_('figure', {}, steps); const cv = el_('canvas', {class: 'dp-img'}, f); draw(cv); el_('figcaption', {text: label}, f); };
      const [r0, r1, c0, c1] = st.box;
      const fitted = (cv, h, w, side) => { const k = side / Math.max(h, w); cv.style.width = `${w * k}px`; cv.style.height = `${h * k}px`; };
      add(`1. ink box ${c1 - c0 + 1}×${r1 - r0 + 1} px`, cv => { cv.width = c1 - c0 + 1; cv.height = r1 - r0 + 1; fitted(cv, cv.height, cv.width, 112);
        cv.getContext('2d').drawImage(pad, c0, r0, cv.width, cv.height, 0, 0, cv.width, cv.height); cv.style.background = '#fff'; });
      add(`2. fitted to ${st.fit_shape[1]}×${st.fit_shape[0]}`, cv => { paintGray(cv, st.fit, st.fit_shape[0], st.fit_shape[1]); fitted(cv, st.fit_shape[0], st.fit_shape[1], 80); });
      add(`3. centre of mass at (14, 14)`, cv => paintGray(cv, res.prepared, 28, 28));
    }
    paint();
  }
  model.on('change:result', show);
  show();
  return () => { clearTimeout(timer); model.off?.('change:result', show); };
}

export default { render };
