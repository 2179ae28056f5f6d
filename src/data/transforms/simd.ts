// Two hot loops of the view pipeline as WebAssembly SIMD, assembled here from their
// instructions (no toolchain, no binary checked in): the 4-tap line combination of the
// resampling passes and one extended-box blur line. Both keep Pillow's integer arithmetic
// exactly (tests compare them with the plain TypeScript loops and with Pillow itself).
// When WebAssembly SIMD is unavailable, `simdKernels()` returns null and the callers use
// their TypeScript loops.

// ---------------------------------------------------------------- encoding

function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

const I32 = 0x7f;
const V128 = 0x7b;

const get = (i: number): number[] => [0x20, ...uleb(i)];
const set = (i: number): number[] => [0x21, ...uleb(i)];
const i32 = (v: number): number[] => [0x41, ...sleb(v)];
const simd = (op: number, ...immediates: number[]): number[] => [0xfd, ...uleb(op), ...immediates];
const ADD = [0x6a];
const SHL = [0x74];
const GE_S = [0x4e];
const load8x8u = simd(0x02, 0, 0); // v128.load8x8_u, align 1, offset 0
const load = simd(0x00, 0, 0);
const store = simd(0x0b, 0, 0);
const store64Lane0 = simd(0x5b, 0, 0, 0);
const splat32 = simd(0x11);
const extLowU16 = simd(0xa9); // i32x4.extend_low_i16x8_u
const extHighU16 = simd(0xaa);
const add32 = simd(0xae);
const sub32 = simd(0xb1);
const mul32 = simd(0xb5);
const shrS32 = simd(0xac);
const shrU32 = simd(0xad);
const add16 = simd(0x8e);
const narrow32to16 = simd(0x85); // i16x8.narrow_i32x4_s
const narrow16to8u = simd(0x66); // i8x16.narrow_i16x8_u (saturating: Pillow's clip8)

function const32x4(v: number): number[] {
  const bytes: number[] = [];
  for (let lane = 0; lane < 4; lane++) for (let b = 0; b < 4; b++) bytes.push((v >>> (8 * b)) & 255);
  return simd(0x0c, ...bytes);
}

/** `for (x = 0; x < n; x += 8) { body }` with x in local `x`, n in local `n`. */
function loop8(x: number, n: number, body: number[]): number[] {
  return [
    ...i32(0), ...set(x),
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(x), ...get(n), ...GE_S, 0x0d, 1, // br_if (x >= n) out of the block
    ...body,
    ...get(x), ...i32(8), ...ADD, ...set(x),
    0x0c, 0, // br to the loop
    0x0b, 0x0b, // end loop, end block
  ];
}

/**
 * combine(b0, b1, b2, b3, w0, w1, w2, w3, acc, dst, n): eight bytes at a time,
 * s = (first ? 2^21 : acc[x]) + sum_k wk * src[bk + x]; then dst[x] = clip8(s >> 22) when
 * `last`, else acc[x] = s.
 */
function combineBody(first: boolean, last: boolean): number[] {
  // params 0-3 b0..b3, 4-7 w0..w3, 8 acc, 9 dst, 10 n; locals 11 x, 12-15 weights, 16 lo, 17 hi, 18 t
  const code: number[] = [];
  for (let k = 0; k < 4; k++) code.push(...get(4 + k), ...splat32, ...set(12 + k));
  const accAt = (offset: number): number[] => [...get(8), ...get(11), ...i32(2), ...SHL, ...ADD,
    ...(offset ? [...i32(offset), ...ADD] : [])];
  const body: number[] = [];
  if (first) body.push(...const32x4(1 << 21), ...set(16), ...const32x4(1 << 21), ...set(17));
  else body.push(...accAt(0), ...load, ...set(16), ...accAt(16), ...load, ...set(17));
  for (let k = 0; k < 4; k++) {
    body.push(...get(k), ...get(11), ...ADD, ...load8x8u, ...set(18));
    body.push(...get(16), ...get(18), ...extLowU16, ...get(12 + k), ...mul32, ...add32, ...set(16));
    body.push(...get(17), ...get(18), ...extHighU16, ...get(12 + k), ...mul32, ...add32, ...set(17));
  }
  if (last) {
    body.push(...get(9), ...get(11), ...ADD);
    body.push(...get(16), ...i32(22), ...shrS32, ...get(17), ...i32(22), ...shrS32, ...narrow32to16);
    body.push(0x22, ...uleb(18)); // local.tee t
    body.push(...get(18), ...narrow16to8u, ...store64Lane0);
  } else {
    body.push(...accAt(0), ...get(16), ...store, ...accAt(16), ...get(17), ...store);
  }
  code.push(...loop8(11, 10, body));
  return [...vec([[1, I32], [7, V128]].map(([n, t]) => [...uleb(n!), t!])), ...code, 0x0b];
}

/**
 * boxLine(sub, add, far, acc, dst, n, wh, wl, fh, fl): one output line of Pillow's
 * extended box blur. acc[x] += src[add + x] - src[sub + x]; e = src[sub + x] + src[far + x];
 * dst[x] = (acc * ww + e * fw + 2^23) >> 24 with ww = wh * 4096 + wl, fw = fh * 4096 + fl,
 * computed as ((acc * wh + e * fh) + ((acc * wl + e * fl + 2^23) >> 12)) >> 12 in int32.
 */
function boxLineBody(): number[] {
  // params 0 sub, 1 add, 2 far, 3 acc, 4 dst, 5 n, 6 wh, 7 wl, 8 fh, 9 fl
  // locals 10 x, 11-14 splats (wh, wl, fh, fl), 15 s, 16 a, 17 e, 18 accLo, 19 accHi, 20 r0
  const code: number[] = [];
  for (let k = 0; k < 4; k++) code.push(...get(6 + k), ...splat32, ...set(11 + k));
  const accAt = (offset: number): number[] => [...get(3), ...get(10), ...i32(2), ...SHL, ...ADD,
    ...(offset ? [...i32(offset), ...ADD] : [])];
  const at = (p: number): number[] => [...get(p), ...get(10), ...ADD];
  const result = (accLocal: number, ext: number[]): number[] => [
    // hi part
    ...get(accLocal), ...get(11), ...mul32, ...get(17), ...ext, ...get(13), ...mul32, ...add32,
    // lo part
    ...get(accLocal), ...get(12), ...mul32, ...get(17), ...ext, ...get(14), ...mul32, ...add32,
    ...const32x4(1 << 23), ...add32, ...i32(12), ...shrU32,
    ...add32, ...i32(12), ...shrU32,
  ];
  const body: number[] = [
    ...at(0), ...load8x8u, ...set(15),
    ...at(1), ...load8x8u, ...set(16),
    ...get(15), ...at(2), ...load8x8u, ...add16, ...set(17),
    // acc += add - sub, low and high halves
    ...accAt(0), ...load, ...get(16), ...extLowU16, ...add32, ...get(15), ...extLowU16, ...sub32, ...set(18),
    ...accAt(16), ...load, ...get(16), ...extHighU16, ...add32, ...get(15), ...extHighU16, ...sub32, ...set(19),
    ...accAt(0), ...get(18), ...store,
    ...accAt(16), ...get(19), ...store,
    // dst
    ...at(4),
    ...result(18, extLowU16), ...result(19, extHighU16), ...narrow32to16, 0x22, ...uleb(20),
    ...get(20), ...narrow16to8u, ...store64Lane0,
  ];
  code.push(...loop8(10, 5, body));
  return [...vec([[1, I32], [10, V128]].map(([n, t]) => [...uleb(n!), t!])), ...code, 0x0b];
}

/**
 * hue(ptr, pixels, shift): torchvision's PIL hue shift, four interleaved RGB pixels at a
 * time, in place. Pillow's rgb2hsv and hsv2rgb mix float and double arithmetic; each step
 * is done at the same precision here (f32x4 for float, f64x2 for double, the conversions
 * between them round to nearest like C's), so the bytes are Pillow's.
 */
function hueBody(): number[] {
  // params: 0 ptr, 1 pixels, 2 shift; locals from 3
  let next = 3;
  const locals: number[] = [];
  const i32Local = next++; // byte offset, processed pixel count
  const count = next++;
  const v128 = (): number => {
    locals.push(next);
    return next++;
  };
  const tee = (i: number): number[] => [0x22, ...uleb(i)];
  const f64 = (x: number): number[] => {
    const b = new Uint8Array(new Float64Array([x]).buffer);
    return [0x44, ...b];
  };
  const splat64 = (x: number): number[] => [...f64(x), ...simd(0x14)];
  const shuffle = (...lanes: number[]): number[] => simd(0x0d, ...lanes);
  const HIGH_TO_LOW = shuffle(8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
  const JOIN_LOW = shuffle(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
  const swz = (idx: number[]): number[] => [...simd(0x0c, ...idx), ...simd(0x0e)];
  const lane = (k: number): number[] => [k, 0x80, 0x80, 0x80];
  const promoteLow = simd(0x5f);
  const demote = simd(0x5e);
  const f64add = simd(0xf0);
  const f64sub = simd(0xf1);
  const f64mul = simd(0xf2);
  const f64div = simd(0xf3);
  const f64floor = simd(0x75);
  const f64trunc = simd(0x7a);
  const f64ge = simd(0x4c);
  const truncU = simd(0xfd); // i32x4.trunc_sat_f64x2_u_zero
  const convLowU = simd(0xff); // f64x2.convert_low_i32x4_u
  const f32div = simd(0xe7);
  const f32sub = simd(0xe5);
  const f32convU = simd(0xfb);
  const maxU = simd(0xb9);
  const minU = simd(0xb7);
  const eq32 = simd(0x37);
  const geU32 = simd(0x40);
  const and = simd(0x4e);
  const or = simd(0x50);
  const bitselect = simd(0x52);
  const shl32 = simd(0xab);

  // f32x4 -> (lo f64x2, hi f64x2) and back; `value` is a local.get (it is read twice)
  const halves = (value: number[]): [number[], number[]] => [
    [...value, ...promoteLow],
    [...value, ...value, ...HIGH_TO_LOW, ...promoteLow],
  ];
  const joinF32 = (lo: number[], hi: number[]): number[] => [...lo, ...demote, ...hi, ...demote, ...JOIN_LOW];
  const joinI32 = (lo: number[], hi: number[]): number[] => [...lo, ...truncU, ...hi, ...truncU, ...JOIN_LOW];
  const i32halves = (value: number[]): [number[], number[]] => [
    [...value, ...convLowU],
    [...value, ...value, ...HIGH_TO_LOW, ...convLowU],
  ];
  // round half away from zero of a non-negative f64x2, as an f64x2
  const roundPos = (x: number): number[] => [
    ...get(x), ...f64trunc,
    ...get(x), ...get(x), ...f64trunc, ...f64sub, ...splat64(0.5), ...f64ge,
    ...splat64(1.0), ...and, ...f64add,
  ];

  const r = v128(), g = v128(), b = v128(), maxc = v128(), cr = v128(), fcr = v128();
  const s = v128(), rc = v128(), gc = v128(), bc = v128(), isR = v128(), isG = v128();
  const h = v128(), uh = v128(), us = v128(), hh = v128(), t0 = v128(), t1 = v128();
  const sec = v128(), P = v128(), Q = v128(), T = v128(), keep = v128(), px = v128();
  const xd = v128();
  const shift = v128();

  const code: number[] = [...get(2), ...splat32, ...set(shift)];
  const body: number[] = [];
  const ptr = [...get(0), ...get(i32Local), ...ADD];
  // unpack four pixels
  body.push(...ptr, ...load, ...set(px));
  body.push(...get(px), ...swz([...lane(0), ...lane(3), ...lane(6), ...lane(9)]), ...set(r));
  body.push(...get(px), ...swz([...lane(1), ...lane(4), ...lane(7), ...lane(10)]), ...set(g));
  body.push(...get(px), ...swz([...lane(2), ...lane(5), ...lane(8), ...lane(11)]), ...set(b));
  // rgb2hsv
  body.push(...get(r), ...get(g), ...maxU, ...get(b), ...maxU, ...set(maxc));
  body.push(...get(maxc), ...get(r), ...get(g), ...minU, ...get(b), ...minU, ...sub32, ...set(cr));
  body.push(...get(cr), ...f32convU, ...set(fcr));
  body.push(...get(fcr), ...get(maxc), ...f32convU, ...f32div, ...set(s));
  for (const [c, out] of [[r, rc], [g, gc], [b, bc]] as const) {
    body.push(...get(maxc), ...get(c), ...sub32, ...f32convU, ...get(fcr), ...f32div, ...set(out));
  }
  body.push(...get(r), ...get(maxc), ...eq32, ...set(isR));
  body.push(...get(g), ...get(maxc), ...eq32, ...set(isG));
  // h for the three cases: float bc - gc; double 2 + rc - bc and 4 + gc - rc, to float
  const caseDouble = (base: number, a: number, c: number): number[] => {
    const [aLo, aHi] = halves(get(a));
    const [cLo, cHi] = halves(get(c));
    return joinF32(
      [...splat64(base), ...aLo, ...f64add, ...cLo, ...f64sub],
      [...splat64(base), ...aHi, ...f64add, ...cHi, ...f64sub],
    );
  };
  body.push(...get(bc), ...get(gc), ...f32sub); // case r
  body.push(...caseDouble(2.0, rc, bc), ...caseDouble(4.0, gc, rc), ...get(isG), ...bitselect);
  body.push(...get(isR), ...bitselect, ...set(h));
  // uh = trunc(float(frac(h / 6 + 1)) * 255), us = trunc(s * 255), in double
  const uhHalf = (hx: number[]): number[] => [
    ...hx, ...splat64(6.0), ...f64div, ...splat64(1.0), ...f64add, ...tee(xd),
    ...get(xd), ...f64floor, ...f64sub,
    ...demote, ...promoteLow, ...splat64(255.0), ...f64mul,
  ];
  const [hLo, hHi] = halves(get(h));
  body.push(...joinI32(uhHalf(hLo), uhHalf(hHi)), ...set(uh));
  const [sLo, sHi] = halves(get(s));
  body.push(...joinI32([...sLo, ...splat64(255.0), ...f64mul], [...sHi, ...splat64(255.0), ...f64mul]), ...set(us));
  body.push(...get(uh), ...get(shift), ...add32, ...const32x4(255), ...and, ...set(hh));

  // hsv2rgb per half (double lanes): i (sector), p, q, t
  interface HalfLocals { x: number; i: number; f: number; fs: number; v: number; tmp: number }
  const halfLocals = (): HalfLocals => ({ x: v128(), i: v128(), f: v128(), fs: v128(), v: v128(), tmp: v128() });
  const L = [halfLocals(), halfLocals()];
  const [hhLo, hhHi] = i32halves(get(hh));
  const [usLo, usHi] = i32halves(get(us));
  const [vLo, vHi] = i32halves(get(maxc));
  const inputs = [[hhLo, usLo, vLo], [hhHi, usHi, vHi]];
  for (const [half, l] of L.entries()) {
    const [hhHalf, usHalf, vHalf] = inputs[half]!;
    body.push(...hhHalf!, ...splat64(6.0), ...f64mul, ...splat64(255.0), ...f64div, ...set(l.x));
    body.push(...get(l.x), ...f64floor, ...set(l.i));
    body.push(...get(l.x), ...get(l.i), ...f64sub, ...demote, ...promoteLow, ...set(l.f));
    body.push(...usHalf!, ...splat64(255.0), ...f64div, ...demote, ...promoteLow, ...set(l.fs));
    body.push(...vHalf!, ...set(l.v));
  }
  const quantities: ((l: HalfLocals) => number[])[] = [
    (l) => get(l.i),
    (l) => [...splat64(1.0), ...get(l.fs), ...f64sub, ...get(l.v), ...f64mul, ...set(l.tmp), ...roundPos(l.tmp)],
    (l) => [...splat64(1.0), ...get(l.fs), ...get(l.f), ...f64mul, ...demote, ...promoteLow, ...f64sub,
      ...get(l.v), ...f64mul, ...set(l.tmp), ...roundPos(l.tmp)],
    (l) => [...splat64(1.0), ...get(l.fs), ...splat64(1.0), ...get(l.f), ...f64sub, ...f64mul, ...f64sub,
      ...get(l.v), ...f64mul, ...set(l.tmp), ...roundPos(l.tmp)],
  ];
  const results = [sec, P, Q, T];
  quantities.forEach((quantity, k) => {
    body.push(...joinI32(quantity(L[0]!), quantity(L[1]!)), ...set(results[k]!));
  });
  // sector mod 6
  body.push(...get(sec), ...get(sec), ...const32x4(6), ...geU32, ...const32x4(6), ...and, ...sub32, ...set(sec));
  // per-channel choice: [sector 0..5] -> one of v, p, q, t
  const V = maxc;
  const pick = (choices: number[]): number[] => {
    let acc = [...get(choices[5]!)];
    for (let k = 4; k >= 0; k--) {
      acc = [...get(choices[k]!), ...acc, ...get(sec), ...const32x4(k), ...eq32, ...bitselect];
    }
    return acc;
  };
  // keep v, v, v where s == 0 (grey, or a saturation that truncates to 0)
  body.push(...get(us), ...const32x4(0), ...eq32, ...get(cr), ...const32x4(0), ...eq32, ...or, ...set(keep));
  const channel = (choices: number[]): number[] => [...get(V), ...pick(choices), ...get(keep), ...bitselect];
  body.push(...channel([V, Q, P, P, T, V]), ...set(t0));
  body.push(...channel([T, V, V, Q, P, P]), ...i32(8), ...shl32, ...get(t0), ...or, ...set(t0));
  body.push(...channel([P, P, T, V, V, Q]), ...i32(16), ...shl32, ...get(t0), ...or, ...set(t0));
  // repack to 12 bytes and store
  body.push(...get(t0), ...swz([0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 0x80, 0x80, 0x80, 0x80]), ...set(t1));
  body.push(...ptr, ...get(t1), ...store64Lane0);
  body.push(...ptr, ...get(t1), ...simd(0x5a, 0, 8, 2)); // v128.store32_lane offset 8, lane 2
  // loop: 4 pixels (12 bytes) per iteration
  code.push(...i32(0), ...set(i32Local), ...i32(0), ...set(count));
  code.push(0x02, 0x40, 0x03, 0x40,
    ...get(count), ...get(1), ...GE_S, 0x0d, 1,
    ...body,
    ...get(i32Local), ...i32(12), ...ADD, ...set(i32Local),
    ...get(count), ...i32(4), ...ADD, ...set(count),
    0x0c, 0, 0x0b, 0x0b);
  return [...vec([[2, I32], [locals.length, V128]].map(([n, t]) => [...uleb(n!), t!])), ...code, 0x0b];
}

/**
 * blendConstant(ptr, bytes, alpha, degenerate): Pillow's Image.blend of a constant image
 * (brightness: 0, contrast: the mean grey) with the image, 16 bytes at a time, in place:
 * v = float(d + float(alpha * (x - d))); out = v <= 0 ? 0 : v >= 255 ? 255 : trunc(v).
 * `alpha` arrives as the bits of a float32.
 */
function blendConstantBody(): number[] {
  // params 0 ptr, 1 bytes, 2 alphaBits, 3 degenerate; locals 4 x, 5 alpha, 6 d (f32x4), 7 px, 8-11 lanes
  const code: number[] = [...get(2), ...splat32, ...set(5), ...get(3), ...splat32, ...simd(0xfa), ...set(6)];
  const ext16lo = simd(0x89);
  const ext16hi = simd(0x8a);
  const part = (source: number[], idx: number): number[] => [
    ...source, ...simd(0xfa), ...get(6), ...simd(0xe5), ...get(5), ...simd(0xe6), ...get(6), ...simd(0xe4),
    ...simd(0xf8), ...const32x4(0), ...simd(0xb8), ...const32x4(255), ...simd(0xb6), ...set(8 + idx),
  ];
  const at = [...get(0), ...get(4), ...ADD];
  const body: number[] = [
    ...at, ...load, ...set(7),
    ...part([...get(7), ...ext16lo, ...extLowU16], 0),
    ...part([...get(7), ...ext16lo, ...extHighU16], 1),
    ...part([...get(7), ...ext16hi, ...extLowU16], 2),
    ...part([...get(7), ...ext16hi, ...extHighU16], 3),
    ...at,
    ...get(8), ...get(9), ...narrow32to16, ...get(10), ...get(11), ...narrow32to16, ...narrow16to8u,
    ...store,
  ];
  code.push(...i32(0), ...set(4), 0x02, 0x40, 0x03, 0x40,
    ...get(4), ...get(1), ...GE_S, 0x0d, 1,
    ...body,
    ...get(4), ...i32(16), ...ADD, ...set(4),
    0x0c, 0, 0x0b, 0x0b);
  return [...vec([[1, I32], [8, V128]].map(([n, t]) => [...uleb(n!), t!])), ...code, 0x0b];
}

/**
 * blendLuma(ptr, pixels, alpha): ImageEnhance.Color, four RGB pixels at a time, in place:
 * each channel blended with the pixel's grey level L = (19595 R + 38470 G + 7471 B +
 * 32768) >> 16 as in blendConstant.
 */
function blendLumaBody(): number[] {
  // params 0 ptr, 1 pixels, 2 alphaBits; locals 3 offset, 4 count, 5 alpha, 6 px, 7 r, 8 g, 9 b,
  // 10 L (f32x4), 11 out
  const code: number[] = [...get(2), ...splat32, ...set(5)];
  const lane = (k: number): number[] => [k, 0x80, 0x80, 0x80];
  const swz = (idx: number[]): number[] => [...simd(0x0c, ...idx), ...simd(0x0e)];
  const at = [...get(0), ...get(3), ...ADD];
  const blendChannel = (c: number): number[] => [
    ...get(c), ...simd(0xfa), ...get(10), ...simd(0xe5), ...get(5), ...simd(0xe6), ...get(10), ...simd(0xe4),
    ...simd(0xf8), ...const32x4(0), ...simd(0xb8), ...const32x4(255), ...simd(0xb6),
  ];
  const body: number[] = [
    ...at, ...load, ...set(6),
    ...get(6), ...swz([...lane(0), ...lane(3), ...lane(6), ...lane(9)]), ...set(7),
    ...get(6), ...swz([...lane(1), ...lane(4), ...lane(7), ...lane(10)]), ...set(8),
    ...get(6), ...swz([...lane(2), ...lane(5), ...lane(8), ...lane(11)]), ...set(9),
    ...get(7), ...const32x4(19595), ...mul32, ...get(8), ...const32x4(38470), ...mul32, ...add32,
    ...get(9), ...const32x4(7471), ...mul32, ...add32, ...const32x4(0x8000), ...add32,
    ...i32(16), ...shrU32, ...simd(0xfa), ...set(10),
    ...blendChannel(7), ...set(11),
    ...blendChannel(8), ...i32(8), ...simd(0xab), ...get(11), ...simd(0x50), ...set(11),
    ...blendChannel(9), ...i32(16), ...simd(0xab), ...get(11), ...simd(0x50), ...set(11),
    ...get(11), ...swz([0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 0x80, 0x80, 0x80, 0x80]), ...set(11),
    ...at, ...get(11), ...store64Lane0,
    ...at, ...get(11), ...simd(0x5a, 0, 8, 2),
  ];
  code.push(...i32(0), ...set(3), ...i32(0), ...set(4), 0x02, 0x40, 0x03, 0x40,
    ...get(4), ...get(1), ...GE_S, 0x0d, 1,
    ...body,
    ...get(3), ...i32(12), ...ADD, ...set(3),
    ...get(4), ...i32(4), ...ADD, ...set(4),
    0x0c, 0, 0x0b, 0x0b);
  return [...vec([[2, I32], [7, V128]].map(([n, t]) => [...uleb(n!), t!])), ...code, 0x0b];
}

/**
 * transpose3(src, stride, rows, cols, dst) / transpose1: (rows, cols) pixels of 3 or 1
 * bytes, rows `stride` bytes apart, to (cols, rows) packed. Written in destination order, so
 * the 4-byte stores of 3-byte pixels only spill into the pixel written next (or padding).
 */
function transposeBody(channels: 1 | 3): number[] {
  // params 0 src, 1 stride, 2 rows, 3 cols, 4 dst; locals 5 x, 6 y, 7 s, 8 d
  const loadOp = channels === 3 ? [0x28, 0, 0] : [0x2d, 0, 0]; // i32.load / i32.load8_u
  const storeOp = channels === 3 ? [0x36, 0, 0] : [0x3a, 0, 0]; // i32.store / i32.store8
  const code: number[] = [
    ...get(4), ...set(8),
    ...i32(0), ...set(5),
    0x02, 0x40, 0x03, 0x40,
    ...get(5), ...get(3), ...GE_S, 0x0d, 1,
    ...get(0), ...get(5), ...i32(channels), ...[0x6c], ...ADD, ...set(7), // s = src + x * C
    ...i32(0), ...set(6),
    0x02, 0x40, 0x03, 0x40,
    ...get(6), ...get(2), ...GE_S, 0x0d, 1,
    ...get(8), ...get(7), ...loadOp, ...storeOp,
    ...get(8), ...i32(channels), ...ADD, ...set(8),
    ...get(7), ...get(1), ...ADD, ...set(7),
    ...get(6), ...i32(1), ...ADD, ...set(6),
    0x0c, 0, 0x0b, 0x0b,
    ...get(5), ...i32(1), ...ADD, ...set(5),
    0x0c, 0, 0x0b, 0x0b,
  ];
  return [...vec([[4, I32]].map(([n, t]) => [...uleb(n!), t!])), ...code, 0x0b];
}

/**
 * normalizeRow3(src, width, d0, d1, d2, flip, m0, m1, m2, s0, s1, s2): one row of RGB bytes
 * to three float planes, (float(v / 255) - mean) / std in float32 (torch's ToTensor and
 * Normalize), mirrored when `flip`. Means and stds arrive as float32 bits. width >= 4.
 */
function normalizeRowBody(channels: 1 | 3): number[] {
  // params: 0 src, 1 width, 2..(1+C) planes, 2+C flip, then C means, C stds
  const flipP = 2 + channels;
  const meanP = flipP + 1;
  const stdP = meanP + channels;
  let next = stdP + channels;
  const x = next++;
  const xb = next++;
  const o = next++;
  const firstV = next;
  const means = Array.from({ length: channels }, () => next++);
  const stds = Array.from({ length: channels }, () => next++);
  const vals = Array.from({ length: channels }, () => next++);
  const px = next++;
  const c255 = next++;
  const lane = (k: number): number[] => [k, 0x80, 0x80, 0x80];
  const swz = (idx: number[]): number[] => [...simd(0x0c, ...idx), ...simd(0x0e)];
  const REVERSE = simd(0x0d, 12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
  const code: number[] = [];
  for (let c = 0; c < channels; c++) {
    code.push(...get(meanP + c), ...splat32, ...set(means[c]!), ...get(stdP + c), ...splat32, ...set(stds[c]!));
  }
  code.push(...const32x4(0x437f0000), ...set(c255)); // 255.0f
  const body: number[] = [
    // xb = min(x, width - 4): the last block overlaps the previous one
    ...get(x), ...get(1), ...i32(4), ...[0x6b], ...get(x), ...get(1), ...i32(4), ...[0x6b], ...[0x48],
    ...[0x1b], ...set(xb), // select(x, width - 4, x < width - 4)
  ];
  if (channels === 3) {
    body.push(...get(0), ...get(xb), ...i32(3), ...[0x6c], ...ADD, ...load, ...set(px));
    const lanes = [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]];
    for (let c = 0; c < 3; c++) {
      body.push(...get(px), ...swz(lanes[c]!.flatMap(lane)), ...set(vals[c]!));
    }
  } else {
    body.push(...get(0), ...get(xb), ...ADD, ...simd(0x5c, 0, 0), ...simd(0x89), ...extLowU16, ...set(vals[0]!));
  }
  for (let c = 0; c < channels; c++) {
    body.push(...get(vals[c]!), ...simd(0xfa), ...get(c255), ...simd(0xe7), ...get(means[c]!), ...simd(0xe5),
      ...get(stds[c]!), ...simd(0xe7), ...set(vals[c]!));
  }
  // output offset in bytes: flip ? (width - 4 - xb) * 4 : xb * 4, lanes reversed when flipped
  body.push(...get(flipP), 0x04, 0x40);
  body.push(...get(1), ...i32(4), ...[0x6b], ...get(xb), ...[0x6b], ...i32(2), ...SHL, ...set(o));
  for (let c = 0; c < channels; c++) body.push(...get(vals[c]!), ...get(vals[c]!), ...REVERSE, ...set(vals[c]!));
  body.push(0x05, ...get(xb), ...i32(2), ...SHL, ...set(o), 0x0b);
  for (let c = 0; c < channels; c++) {
    body.push(...get(2 + c), ...get(o), ...ADD, ...get(vals[c]!), ...store);
  }
  code.push(...i32(0), ...set(x), 0x02, 0x40, 0x03, 0x40,
    ...get(x), ...get(1), ...GE_S, 0x0d, 1,
    ...body,
    ...get(x), ...i32(4), ...ADD, ...set(x),
    0x0c, 0, 0x0b, 0x0b);
  const v128Count = next - firstV;
  return [...vec([[3, I32], [v128Count, V128]].map(([n, t]) => [...uleb(n!), t!])), ...code, 0x0b];
}

function name(text: string): number[] {
  return vec([...text].map((c) => [c.charCodeAt(0)]));
}

/** The module's bytes (exported for tests). */
export function buildModule(): Uint8Array<ArrayBuffer> {
  const combineType = [0x60, ...vec(Array(11).fill([I32])), 0]; // 11 i32 params, no results
  const boxType = [0x60, ...vec(Array(10).fill([I32])), 0];
  const hueType = [0x60, ...vec(Array(3).fill([I32])), 0];
  const blendType = [0x60, ...vec(Array(4).fill([I32])), 0];
  const transposeType = [0x60, ...vec(Array(5).fill([I32])), 0];
  const norm3Type = [0x60, ...vec(Array(12).fill([I32])), 0];
  const norm1Type = [0x60, ...vec(Array(6).fill([I32])), 0];
  const names = ['combineOnly', 'combineFirst', 'combineMiddle', 'combineLast', 'boxLine', 'hue',
    'blendConstant', 'blendLuma', 'transpose3', 'transpose1', 'normalizeRow3', 'normalizeRow1'];
  const bodies = [combineBody(true, true), combineBody(true, false), combineBody(false, false),
    combineBody(false, true), boxLineBody(), hueBody(), blendConstantBody(), blendLumaBody(),
    transposeBody(3), transposeBody(1), normalizeRowBody(3), normalizeRowBody(1)];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([combineType, boxType, hueType, blendType, transposeType, norm3Type, norm1Type])),
    // import env.memory (a memory with at least one page)
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])),
    ...section(3, vec([[0], [0], [0], [0], [1], [2], [3], [2], [4], [4], [5], [6]])),
    ...section(7, vec(names.map((exported, i) => [...name(exported), 0x00, i]))),
    ...section(10, vec(bodies.map((body) => [...uleb(body.length), ...body]))),
  ];
  return new Uint8Array(bytes);
}

type Transpose = (src: number, stride: number, rows: number, cols: number, dst: number) => void;

type Combine = (b0: number, b1: number, b2: number, b3: number, w0: number, w1: number,
  w2: number, w3: number, acc: number, dst: number, n: number) => void;

export interface SimdKernels {
  memory: WebAssembly.Memory;
  /** [first && last, first, middle, last] variants of the 4-tap combination. */
  combine: [Combine, Combine, Combine, Combine];
  boxLine: (sub: number, add: number, far: number, acc: number, dst: number, n: number,
    wh: number, wl: number, fh: number, fl: number) => void;
  /** In place over `pixels` RGB pixels at `ptr` (reads and writes up to 4 bytes beyond). */
  hue: (ptr: number, pixels: number, shift: number) => void;
  /** In place over `bytes` bytes (rounded up to 16); alpha as float32 bits. */
  blendConstant: (ptr: number, bytes: number, alphaBits: number, degenerate: number) => void;
  /** In place over `pixels` RGB pixels (rounded up to 4); alpha as float32 bits. */
  blendLuma: (ptr: number, pixels: number, alphaBits: number) => void;
  /** (rows, cols) pixels, rows `stride` bytes apart, to (cols, rows) packed at dst. */
  transpose: [Transpose, Transpose];
  normalizeRow3: (src: number, width: number, d0: number, d1: number, d2: number, flip: number,
    m0: number, m1: number, m2: number, s0: number, s1: number, s2: number) => void;
  normalizeRow1: (src: number, width: number, d0: number, flip: number, m0: number, s0: number) => void;
  /** Bytes of memory, grown on demand; views must be re-taken after a call. */
  ensure(bytes: number): Uint8Array;
}

let kernels: SimdKernels | null | undefined;

/** The SIMD kernels, or null where WebAssembly SIMD is missing (or GROCO_NO_SIMD is set). */
export function simdKernels(): SimdKernels | null {
  if (kernels !== undefined) return kernels;
  kernels = null;
  if (process.env.GROCO_NO_SIMD || typeof WebAssembly === 'undefined') return kernels;
  const bytes = buildModule();
  if (!WebAssembly.validate(bytes)) return kernels;
  const memory = new WebAssembly.Memory({ initial: 1 });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
  const e = instance.exports as Record<string, unknown>;
  kernels = {
    memory,
    combine: [e.combineOnly, e.combineFirst, e.combineMiddle, e.combineLast] as SimdKernels['combine'],
    boxLine: e.boxLine as SimdKernels['boxLine'],
    hue: e.hue as SimdKernels['hue'],
    blendConstant: e.blendConstant as SimdKernels['blendConstant'],
    blendLuma: e.blendLuma as SimdKernels['blendLuma'],
    transpose: [e.transpose1, e.transpose3] as SimdKernels['transpose'],
    normalizeRow3: e.normalizeRow3 as SimdKernels['normalizeRow3'],
    normalizeRow1: e.normalizeRow1 as SimdKernels['normalizeRow1'],
    ensure(size: number): Uint8Array {
      const have = memory.buffer.byteLength;
      if (have < size) memory.grow(Math.ceil((size - have) / 65536));
      return new Uint8Array(memory.buffer);
    },
  };
  return kernels;
}
