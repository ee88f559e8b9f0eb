// edgeclf browser predictor: an ONNX model exported by edgeclf, run with onnxruntime-web.
//
// The labels and the preprocessing contract are read from the model's own metadata_props
// (edgeclf.labels, edgeclf.preprocessing). Preprocessing reproduces edgeclf.runtime's
// Pillow pipeline: decode with EXIF orientation and no colour management, alpha on white,
// centre crop (or squash) and Pillow's resampling filters with their antialiasing when
// shrinking, in Pillow's fixed-point arithmetic, so the model sees the same pixels as
// `edgeclf predict` (bit-identical where the browser's JPEG/PNG decoder gives the same
// pixels as Pillow's libjpeg-turbo/libpng, which it does for baseline photos).
import * as ort from './ort.wasm.min.mjs';

export const MAX_MODEL_BYTES = 1024 * 1024 * 1024;   // wasm32 memory holds the model twice
export const MAX_PIXELS = 100_000_000;                // edgeclf.runtime's decompression guard
export const MIN_SIDE = 8;

export class EdgeclfError extends Error {}

// -- ONNX metadata_props (ModelProto field 14: StringStringEntryProto {1: key, 2: value}) --

function varint(buf, pos) {
  let value = 0, shift = 1;
  for (;;) {
    if (pos >= buf.length) throw new EdgeclfError('truncated ONNX file');
    const b = buf[pos++];
    value += (b & 0x7f) * shift;
    if (b < 0x80) return [value, pos];
    shift *= 128;
  }
}

function fields(buf, start, end, visit) {
  let pos = start;
  while (pos < end) {
    let key; [key, pos] = varint(buf, pos);
    const field = Math.floor(key / 8), wire = key & 7;
    if (wire === 0) { [, pos] = varint(buf, pos); }
    else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else if (wire === 2) {
      let len; [len, pos] = varint(buf, pos);
      if (pos + len > end) throw new EdgeclfError('not an ONNX model (bad length)');
      visit(field, pos, pos + len);
      pos += len;
    } else throw new EdgeclfError(`not an ONNX model (wire type ${wire})`);
  }
}

export function onnxMetadata(bytes) {
  const text = new TextDecoder();
  const props = {};
  fields(bytes, 0, bytes.length, (field, s, e) => {
    if (field !== 14) return;
    let key = '', value = '';
    fields(bytes, s, e, (f, a, b) => {
      if (f === 1) key = text.decode(bytes.subarray(a, b));
      if (f === 2) value = text.decode(bytes.subarray(a, b));
    });
    props[key] = value;
  });
  return props;
}

export function readContract(props) {
  if (!props['edgeclf.labels'] || !props['edgeclf.preprocessing']) {
    throw new EdgeclfError('this ONNX model carries no edgeclf metadata (edgeclf.labels, ' +
                           'edgeclf.preprocessing): export it with `edgeclf export`');
  }
  let labels, contract;
  try {
    labels = JSON.parse(props['edgeclf.labels']);
    contract = JSON.parse(props['edgeclf.preprocessing']);
  } catch (e) {
    throw new EdgeclfError(`the model's edgeclf metadata is not valid JSON: ${e.message}`);
  }
  const [h, w] = contract.size || [];
  if (!Array.isArray(labels) || !labels.length || !(h > 0 && w > 0)) {
    throw new EdgeclfError('the model\'s edgeclf metadata has no labels or no input size');
  }
  if ((contract.version || 1) > 1) {
    throw new EdgeclfError(`contract version ${contract.version} is newer than this page`);
  }
  return { labels, contract };
}

// -- Pillow's resampling (libImaging/Resample.c), 8 bits per channel ------------------------

const FILTERS = {
  box: [0.5, (x) => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0)],
  bilinear: [1.0, (x) => { x = Math.abs(x); return x < 1.0 ? 1.0 - x : 0.0; }],
  hamming: [1.0, (x) => {
    x = Math.abs(x);
    if (x === 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x *= Math.PI;
    return Math.sin(x) / x * (Math.fround(0.54) + Math.fround(0.46) * Math.cos(x));
  }],
  bicubic: [2.0, (x) => {
    const a = -0.5; x = Math.abs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
  }],
  lanczos: [3.0, (x) => {
    const sinc = (v) => (v === 0.0 ? 1.0 : Math.sin(v * Math.PI) / (v * Math.PI));
    return (-3.0 <= x && x < 3.0) ? sinc(x) * sinc(x / 3) : 0.0;
  }],
};
const PRECISION_BITS = 22;

function coefficients(inSize, in0, in1, outSize, [support0, filter]) {
  // Pillow passes the box as C floats: in1 - in0 is a float subtraction
  const scale = Math.fround(in1 - in0) / outSize;
  const filterscale = Math.max(scale, 1.0);
  const support = support0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const kk = new Int32Array(outSize * ksize);
  const bounds = new Int32Array(outSize * 2);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    const ss = 1.0 / filterscale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) { w[x] = filter((x + xmin - center + 0.5) * ss); ww += w[x]; }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0.0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = Math.trunc(k < 0 ? -0.5 + k * (1 << PRECISION_BITS)
                                            : 0.5 + k * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin; bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, kk, bounds };
}

const clip8 = (ss) => { const v = ss >> PRECISION_BITS; return v < 0 ? 0 : v > 255 ? 255 : v; };

function horizontalPass(src, srcW, channels, rowOffset, rows, outW, hor) {
  const out = new Uint8Array(outW * rows * 3);
  for (let y = 0; y < rows; y++) {
    const row = (y + rowOffset) * srcW * channels;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = hor.bounds[xx * 2], xmax = hor.bounds[xx * 2 + 1], k = xx * hor.ksize;
      let s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
      for (let x = 0; x < xmax; x++) {
        const p = row + (x + xmin) * channels, c = hor.kk[k + x];
        s0 += src[p] * c; s1 += src[p + 1] * c; s2 += src[p + 2] * c;
      }
      const o = (y * outW + xx) * 3;
      out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2);
    }
  }
  return out;
}

function verticalPass(src, srcW, channels, rowShift, outH, vert) {
  const out = new Uint8Array(srcW * outH * 3);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = vert.bounds[yy * 2] - rowShift, ymax = vert.bounds[yy * 2 + 1];
    const k = yy * vert.ksize;
    for (let xx = 0; xx < srcW; xx++) {
      let s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
      for (let y = 0; y < ymax; y++) {
        const p = ((y + ymin) * srcW + xx) * channels, c = vert.kk[k + y];
        s0 += src[p] * c; s1 += src[p + 1] * c; s2 += src[p + 2] * c;
      }
      const o = (yy * srcW + xx) * 3;
      out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2);
    }
  }
  return out;
}

/** Resize RGBA pixels (width x height) to outW x outH RGB from ``box`` = [x0, y0, x1, y1]
 * of the source, as Pillow's Image.resize(size, resample, box) does for an RGB image:
 * two fixed-point passes with a uint8 intermediate, vertical first when the height shrinks
 * more than twice as much as the width (Pillow >= 13; earlier Pillow always starts with
 * the horizontal pass, which can move a pixel by 1). */
export function resample(rgba, width, height, outW, outH, box, interpolation = 'bilinear') {
  const filter = FILTERS[interpolation];
  if (!filter) throw new EdgeclfError(`interpolation ${interpolation} is not supported here`);
  const b = box.map(Math.fround);
  const needH = outW !== width || b[0] !== 0 || b[2] !== outW;
  const needV = outH !== height || b[1] !== 0 || b[3] !== outH;
  const horizontalFirst = !(height - outH > 0 && height - outH > (width - outW) * 2);
  const vert = coefficients(height, b[1], b[3], outH, filter);
  const hor = needH ? coefficients(width, b[0], b[2], outW, filter) : null;
  let img = rgba, w = width, channels = 4, shift = 0;
  if (horizontalFirst) {
    if (needH) {
      const first = vert.bounds[0];
      const last = vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1];
      img = horizontalPass(img, w, channels, first, last - first, outW, hor);
      w = outW; channels = 3; shift = first;
    }
    if (needV) { img = verticalPass(img, w, channels, shift, outH, vert); channels = 3; }
  } else {
    if (needV) { img = verticalPass(img, w, channels, 0, outH, vert); channels = 3; }
    if (needH) {
      img = horizontalPass(img, w, channels, 0, outH, outW, hor);
      w = outW; channels = 3;
    }
  }
  if (channels === 3) return img;
  const out = new Uint8Array(outW * outH * 3);                 // neither pass: a copy
  for (let i = 0, o = 0; o < out.length; i += 4, o += 3) {
    out[o] = img[i]; out[o + 1] = img[i + 1]; out[o + 2] = img[i + 2];
  }
  return out;
}

/** The source box of edgeclf.runtime.preprocess.resize_to_contract. */
export function contractBox(width, height, contract) {
  const [th, tw] = contract.size;
  if (contract.resize === 'squash') return [0, 0, width, height];
  const aspect = tw / th;
  let box;
  if (width / height > aspect) {
    const cw = height * aspect;
    box = [(width - cw) / 2, 0, (width + cw) / 2, height];
  } else {
    const ch = width / aspect;
    box = [0, (height - ch) / 2, width, (height + ch) / 2];
  }
  return [Math.max(0, box[0]), Math.max(0, box[1]), Math.min(width, box[2]),
          Math.min(height, box[3])];
}

/** RGB uint8 (H x W x 3) model input from RGBA pixels, as edgeclf.runtime.preprocess. */
export function toContract(rgba, width, height, contract) {
  const [th, tw] = contract.size;
  if (Math.min(width, height) < MIN_SIDE) {
    throw new EdgeclfError(`image is ${width}x${height}, smaller than the minimum side of ` +
                           `${MIN_SIDE} px`);
  }
  const box = contractBox(width, height, contract);
  if (width === tw && height === th && box[0] === 0 && box[1] === 0 && box[2] === width &&
      box[3] === height) {
    return resample(rgba, width, height, tw, th, [0, 0, tw, th], 'box');  // a copy
  }
  return resample(rgba, width, height, tw, th, box, contract.interpolation || 'bilinear');
}

/** Decode an image Blob/File to RGBA: EXIF orientation applied, no colour management
 * (Pillow ignores ICC profiles), transparency composited on white. */
export async function decode(blob) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image',
      colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (e) {
    throw new EdgeclfError(`not a readable image (the browser cannot decode it: ${e.message})`);
  }
  const { width, height } = bitmap;
  if (width * height > MAX_PIXELS) {
    bitmap.close();
    throw new EdgeclfError(`image is ${width}x${height} pixels, over the limit of ` +
                           `${MAX_PIXELS.toLocaleString('en')}`);
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return { rgba: ctx.getImageData(0, 0, width, height).data, width, height };
}

const size = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} kB`);

function softmaxCheck(probs) {
  let sum = 0;
  for (const p of probs) sum += p;
  return Math.abs(sum - 1) < 1e-2;
}

export class Classifier {
  constructor(session, labels, contract, bytes) {
    Object.assign(this, { session, labels, contract, bytes });
    this.inputName = session.inputNames[0];
    this.outputName = session.outputNames[0];
    const meta = session.inputMetadata && session.inputMetadata[0];
    this.inputType = meta && meta.type === 'uint8' ? 'uint8' : 'float32';
    const out = session.outputMetadata && session.outputMetadata[0];
    const classes = out && out.shape ? out.shape[out.shape.length - 1] : null;
    if (typeof classes === 'number' && classes !== labels.length) {
      throw new EdgeclfError(`the model outputs ${classes} classes but its metadata lists ` +
                             `${labels.length} labels: the file is not one edgeclf exported ` +
                             'as is');
    }
  }

  /** Fetch and load ``url``; refuses a model over ``maxBytes`` before reading it all. */
  static async load(url, { maxBytes = MAX_MODEL_BYTES } = {}) {
    const response = await fetch(url);
    if (!response.ok) throw new EdgeclfError(`cannot fetch ${url}: HTTP ${response.status}`);
    const declared = Number(response.headers.get('content-length')) || 0;
    const tooBig = (n) => new EdgeclfError(
      `${url} is ${size(n)}, more than this page loads (${size(maxBytes)}): the ` +
      'browser\'s memory for WebAssembly is ' +
      'limited; export a smaller or quantized model (-q int8)');
    if (declared > maxBytes) throw tooBig(declared);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes.length > maxBytes) throw tooBig(bytes.length);
    const { labels, contract } = readContract(onnxMetadata(bytes));
    ort.env.wasm.numThreads = globalThis.crossOriginIsolated
      ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
    let session;
    try {
      session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] });
    } catch (e) {
      throw new EdgeclfError(`onnxruntime-web could not load ${url} (${size(bytes.length)}` +
                             `; too large for this browser's memory?): ${e.message || e}`);
    }
    return new Classifier(session, labels, contract, bytes.length);
  }

  /** Model input (1 x H x W x 3) from a Blob/File; returns the tensor and the pixels. */
  async prepare(blob) {
    const { rgba, width, height } = await decode(blob);
    const pixels = toContract(rgba, width, height, this.contract);
    const [h, w] = this.contract.size;
    const data = this.inputType === 'uint8' ? pixels : Float32Array.from(pixels);
    return new ort.Tensor(this.inputType, data, [1, h, w, 3]);
  }

  async run(tensor) {
    const out = await this.session.run({ [this.inputName]: tensor });
    const probs = Array.from(out[this.outputName].data, Number);
    if (probs.length !== this.labels.length) {
      throw new EdgeclfError(`the model gave ${probs.length} scores for ` +
                             `${this.labels.length} labels`);
    }
    if (!softmaxCheck(probs)) console.warn('edgeclf: the scores do not sum to 1');
    return probs;
  }

  /** Classify one image: ``{probs, top: [{label, score}], ms: {prepare, run}}``. */
  async classify(blob, topK = 3) {
    const t0 = performance.now();
    const tensor = await this.prepare(blob);
    const t1 = performance.now();
    const probs = await this.run(tensor);
    const t2 = performance.now();
    const order = probs.map((p, i) => [p, i]).sort((a, b) => b[0] - a[0]).slice(0, topK);
    return { probs, top: order.map(([score, i]) => ({ label: this.labels[i], score })),
             ms: { prepare: t1 - t0, run: t2 - t1 } };
  }
}

export { ort };
