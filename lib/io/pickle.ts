/**
 * A minimal, safe pickle reader (protocols 0-5, the opcodes torch.save / TorchScript / legacy torch files use).
 *
 * It executes nothing. GLOBAL/STACK_GLOBAL are resolved against an allow-list of the few callables a checkpoint
 * needs, each with a data-only implementation here (build a dict, describe a tensor, ...). `__torch__.*`
 * classes (TorchScript modules) and argparse.Namespace become inert `PyObject`s holding their BUILD state.
 * Any other global is refused with an error naming it.
 */
import { CheckpointError } from './types.js';

/** A resolved global from the allow-list. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An inert object: a TorchScript module (`__torch__.*`) or another allowed data class, with its BUILD state. */
export class PyObject {
  state: unknown = undefined;
  constructor(
    readonly className: string,
    readonly args: unknown[],
  ) {}
}

/** A typed storage referenced by a persistent id (bytes live elsewhere in the file). */
export interface StorageRef {
  kind: 'storage';
  /** PyTorch dtype name of the storage elements ('float32', 'float16', ... or 'untyped'). */
  dtype: string;
  key: string;
  location: string;
  /** Elements in the storage. */
  numel: number;
  /** Element offset into the root storage (legacy view storages). */
  elementOffset: number;
}

/** A tensor described by `_rebuild_tensor_v2`: a strided view of a storage. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
    /** dtype from `_rebuild_tensor_v3` (untyped storages); otherwise the storage's. */
    readonly dtypeOverride?: string,
  ) {}
  get dtype(): string {
    return this.dtypeOverride ?? this.storage.dtype;
  }
}

/** A numpy dtype description (from numpy.dtype(...)); inert. */
export class NumpyDtype {
  state: unknown = undefined;
  constructor(readonly descr: string) {}
}

/** Python dict: a Map (insertion order kept). Attributes set by BUILD (e.g. state_dict `_metadata`) are kept aside. */
export const dictAttrs = new WeakMap<Map<unknown, unknown>, unknown>();
const tuples = new WeakSet<unknown[]>();
export function isTuple(x: unknown): x is unknown[] {
  return Array.isArray(x) && tuples.has(x);
}
function tuple(items: unknown[]): unknown[] {
  tuples.add(items);
  return items;
}

/** Storage classes torch writes in persistent ids -> element dtype. */
export const STORAGE_DTYPES: Record<string, string> = {
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  DoubleStorage: 'float64',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  UntypedStorage: 'untyped',
};

/** torch dtype globals (torch.float16, ...) -> PyTorch dtype name. */
const TORCH_DTYPES: Record<string, string> = {
  float32: 'float32',
  float: 'float32',
  float16: 'float16',
  half: 'float16',
  bfloat16: 'bfloat16',
  float64: 'float64',
  double: 'float64',
  int64: 'int64',
  long: 'int64',
  int32: 'int32',
  int: 'int32',
  int16: 'int16',
  short: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

/** The allow-list: `module.name` of every global a checkpoint may reference. */
const ALLOWED = new Set<string>([
  'collections.OrderedDict',
  'builtins.dict',
  '__builtin__.dict',
  'builtins.set',
  '__builtin__.set',
  'builtins.frozenset',
  '__builtin__.frozenset',
  'builtins.slice',
  '__builtin__.slice',
  'builtins.list',
  '__builtin__.list',
  'builtins.tuple',
  '__builtin__.tuple',
  '_codecs.encode',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor_v3',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2',
  'torch.Tensor',
  'torch.nn.parameter.Parameter',
  'torch.device',
  'torch.Size',
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
  'torch.storage.UntypedStorage',
  'torch.storage._LegacyStorage',
  ...Object.keys(TORCH_DTYPES).map((s) => `torch.${s}`),
  'argparse.Namespace',
  'numpy.core.multiarray.scalar',
  'numpy._core.multiarray.scalar',
  'numpy.dtype',
]);

/** Whether a global may be referenced (allow-list or a TorchScript `__torch__` class). */
export function isAllowedGlobal(module: string, name: string): boolean {
  return ALLOWED.has(`${module}.${name}`) || module === '__torch__' || module.startsWith('__torch__.');
}

export function refuseGlobal(module: string, name: string): never {
  const qual = `${module}.${name}`;
  const hint = /^(torch\.nn\.|[a-z_][\w.]*\.(model|models|unet|net|nets)\b)/i.test(module)
    ? ' (this file seems to pickle a whole Python model object; save its weights instead: torch.save(model.state_dict(), path))'
    : ' (diffguide never runs code from a pickle; re-save the file with only tensors, e.g. torch.save(model.state_dict(), path), or convert it to safetensors)';
  throw new CheckpointError(`refusing pickle global ${qual}: not needed by a checkpoint${hint}`);
}

export interface PickleOptions {
  /** Resolve a persistent id (torch: ('storage', StorageClass, key, location, numel[, view])). */
  persistentLoad?: (pid: unknown) => unknown;
  /** Name used in error messages. */
  source?: string;
}

export interface PickleResult {
  value: unknown;
  /** Offset just past the STOP opcode. */
  end: number;
}

/** Thrown when the pickle runs past the available bytes (the caller may retry with more). */
export class PickleTruncated extends CheckpointError {}

const MARK = Symbol('mark');

function num(x: unknown, what: string): number {
  if (typeof x === 'number') return x;
  if (typeof x === 'bigint' && x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER))
    return Number(x);
  if (typeof x === 'boolean') return x ? 1 : 0;
  throw new CheckpointError(`pickle: ${what} must be an integer, got ${describe(x)}`);
}
function describe(x: unknown): string {
  if (x === null) return 'None';
  if (x instanceof PyGlobal) return `global ${x.qualname}`;
  if (x instanceof PyObject) return `object ${x.className}`;
  if (Array.isArray(x)) return isTuple(x) ? 'tuple' : 'list';
  if (x instanceof Map) return 'dict';
  return typeof x;
}
function ints(x: unknown, what: string): number[] {
  if (!Array.isArray(x)) throw new CheckpointError(`pickle: ${what} must be a tuple of ints, got ${describe(x)}`);
  return x.map((v) => num(v, what));
}

/** Apply an allowed callable to its arguments (REDUCE / NEWOBJ). Data-only: nothing is executed. */
function call(g: PyGlobal, args: unknown[], isNew: boolean): unknown {
  const q = g.qualname;
  if (g.module === '__torch__' || g.module.startsWith('__torch__.') || q === 'argparse.Namespace')
    return new PyObject(q, args);
  switch (q) {
    case 'collections.OrderedDict':
    case 'builtins.dict':
    case '__builtin__.dict': {
      const m = new Map<unknown, unknown>();
      const init = args[0];
      if (init instanceof Map) for (const [k, v] of init) m.set(k, v);
      else if (Array.isArray(init))
        for (const kv of init) if (Array.isArray(kv) && kv.length === 2) m.set(kv[0], kv[1]);
      return m;
    }
    case 'builtins.set':
    case '__builtin__.set':
    case 'builtins.frozenset':
    case '__builtin__.frozenset':
      return new Set(Array.isArray(args[0]) ? args[0] : args[0] instanceof Set ? [...args[0]] : []);
    case 'builtins.list':
    case '__builtin__.list':
      return Array.isArray(args[0]) ? [...args[0]] : [];
    case 'builtins.tuple':
    case '__builtin__.tuple':
      return tuple(Array.isArray(args[0]) ? [...args[0]] : []);
    case 'builtins.slice':
    case '__builtin__.slice':
      return { start: args[0] ?? null, stop: args[1] ?? null, step: args[2] ?? null };
    case '_codecs.encode': {
      // Protocol-2 pickles write bytes as _codecs.encode(str, 'latin1').
      const [s, enc] = args;
      if (typeof s !== 'string') throw new CheckpointError('pickle: _codecs.encode needs a str');
      if (enc === 'latin1' || enc === 'latin-1' || enc === undefined)
        return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
      if (enc === 'utf-8' || enc === 'utf8') return new TextEncoder().encode(s);
      throw new CheckpointError(`pickle: _codecs.encode with encoding ${String(enc)} is not supported`);
    }
    case 'torch._utils._rebuild_tensor':
    case 'torch._utils._rebuild_tensor_v2':
    case 'torch._utils._rebuild_tensor_v3': {
      const st = args[0] as StorageRef;
      if (!st || typeof st !== 'object' || (st as StorageRef).kind !== 'storage')
        throw new CheckpointError(`pickle: ${g.name} expects a storage as first argument, got ${describe(st)}`);
      const shape = ints(args[2], 'tensor size');
      const stride = ints(args[3], 'tensor stride');
      if (shape.length !== stride.length)
        throw new CheckpointError(`pickle: tensor size ${shape} and stride ${stride} differ in rank`);
      let dtype: string | undefined;
      if (q === 'torch._utils._rebuild_tensor_v3') {
        const d = args[6];
        if (!(d instanceof PyGlobal) || !TORCH_DTYPES[d.name])
          throw new CheckpointError(`pickle: _rebuild_tensor_v3 has an unsupported dtype ${describe(d)}`);
        dtype = TORCH_DTYPES[d.name];
      }
      return new TensorRef(st, num(args[1], 'storage offset'), shape, stride, dtype);
    }
    case 'torch._utils._rebuild_parameter':
    case 'torch._utils._rebuild_parameter_with_state':
      return args[0];
    case 'torch._tensor._rebuild_from_type_v2': {
      // (func, new_type, args, state): a tensor (or Parameter) rebuilt by an allowed func; the type is dropped.
      const [fn, type, fargs] = args;
      if (!(fn instanceof PyGlobal) || !Array.isArray(fargs))
        throw new CheckpointError('pickle: malformed _rebuild_from_type_v2');
      if (
        !(type instanceof PyGlobal) ||
        (type.qualname !== 'torch.Tensor' && type.qualname !== 'torch.nn.parameter.Parameter')
      )
        throw new CheckpointError(
          `pickle: _rebuild_from_type_v2 with tensor type ${type instanceof PyGlobal ? type.qualname : describe(type)} is not supported`,
        );
      return call(fn, fargs, false);
    }
    case 'torch.nn.parameter.Parameter':
      if (args[0] instanceof TensorRef) return args[0];
      break;
    case 'torch.device':
      return args.length > 1 && args[1] !== null ? `${String(args[0])}:${String(args[1])}` : String(args[0]);
    case 'torch.Size':
      return tuple(Array.isArray(args[0]) ? [...args[0]] : []);
    case 'numpy.dtype':
      return new NumpyDtype(String(args[0]));
    case 'numpy.core.multiarray.scalar':
    case 'numpy._core.multiarray.scalar': {
      const [dt, raw] = args;
      const bytes =
        raw instanceof Uint8Array
          ? raw
          : typeof raw === 'string'
            ? Uint8Array.from(raw, (c) => c.charCodeAt(0) & 0xff)
            : null;
      if (!(dt instanceof NumpyDtype) || !bytes) throw new CheckpointError('pickle: malformed numpy scalar');
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      switch (dt.descr) {
        case 'f8':
          return dv.getFloat64(0, true);
        case 'f4':
          return dv.getFloat32(0, true);
        case 'i8':
          return Number(dv.getBigInt64(0, true));
        case 'i4':
          return dv.getInt32(0, true);
        case 'u1':
          return dv.getUint8(0);
        case 'b1':
          return dv.getUint8(0) !== 0;
        default:
          return new PyObject(`numpy.${dt.descr}`, [bytes]);
      }
    }
  }
  if (STORAGE_DTYPES[g.name] !== undefined || TORCH_DTYPES[g.name] !== undefined)
    throw new CheckpointError(`pickle: ${q} cannot be ${isNew ? 'instantiated' : 'called'} in a checkpoint`);
  refuseGlobal(g.module, g.name);
}

const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder('utf-8');

/**
 * Run the pickle starting at `start` in `buf` and return the unpickled value and the end offset.
 * Throws PickleTruncated when the bytes end before STOP.
 */
export function unpickle(buf: Uint8Array, opts: PickleOptions = {}, start = 0): PickleResult {
  const src = opts.source ?? 'pickle';
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = start;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();
  const need = (n: number) => {
    if (p + n > buf.length)
      throw new PickleTruncated(`${src}: pickle data ends unexpectedly at byte ${buf.length} (truncated file?)`);
  };
  const u8 = () => (need(1), buf[p++]);
  const u16 = () => (need(2), (p += 2), dv.getUint16(p - 2, true));
  const u32 = () => (need(4), (p += 4), dv.getUint32(p - 4, true));
  const i32 = () => (need(4), (p += 4), dv.getInt32(p - 4, true));
  const len32 = () => {
    const n = i32();
    if (n < 0) throw new CheckpointError(`${src}: malformed pickle (negative length at byte ${p - 4})`);
    return n;
  };
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(buf.length)) throw new PickleTruncated(`${src}: pickle length field ${v} exceeds the data`);
    return Number(v);
  };
  const bytes = (n: number) => {
    need(n);
    p += n;
    return buf.subarray(p - n, p);
  };
  const line = () => {
    const e = buf.indexOf(0x0a, p);
    if (e < 0) throw new PickleTruncated(`${src}: pickle data ends inside a text line`);
    const s = latin1.decode(buf.subarray(p, e));
    p = e + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0) throw new CheckpointError(`${src}: malformed pickle (stack underflow at byte ${p - 1})`);
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) throw new CheckpointError(`${src}: malformed pickle (empty stack at byte ${p - 1})`);
    return stack[stack.length - 1];
  };
  const popMark = () => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) throw new CheckpointError(`${src}: malformed pickle (no MARK at byte ${p - 1})`);
    stack = prev;
    return items;
  };
  const longFrom = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const global = (module: string, name: string) => {
    if (!isAllowedGlobal(module, name)) refuseGlobal(module, name);
    return new PyGlobal(module, name);
  };
  const setItems = (d: unknown, kv: unknown[]) => {
    if (!(d instanceof Map)) throw new CheckpointError(`${src}: malformed pickle (SETITEM on ${describe(d)})`);
    for (let i = 0; i + 1 < kv.length; i += 2) d.set(kv[i], kv[i + 1]);
  };
  const callable = (f: unknown): PyGlobal => {
    if (f instanceof PyGlobal) return f;
    throw new CheckpointError(`${src}: malformed pickle (cannot call ${describe(f)})`);
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        need(8);
        p += 8;
        break;
      case 0x2e: // STOP
        return { value: pop(), end: p };
      case 0x28: // MARK
        metastack.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length) stack.pop();
        else popMark();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x49: {
        // INT
        const s = line();
        stack.push(s === '01' ? true : s === '00' ? false : Number.parseInt(s, 10));
        break;
      }
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x4c: {
        // LONG
        const s = line().replace(/L$/, '');
        const v = BigInt(s);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x8a: // LONG1
        stack.push(longFrom(bytes(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(longFrom(bytes(len32())));
        break;
      case 0x46: // FLOAT
        stack.push(Number.parseFloat(line()));
        break;
      case 0x47: // BINFLOAT (big-endian)
        need(8);
        stack.push(dv.getFloat64(p, false));
        p += 8;
        break;
      case 0x53: {
        // STRING (repr of a py2 str)
        const s = line().trim();
        stack.push(
          s
            .slice(1, -1)
            .replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_m, e: string) =>
              e[0] === 'x'
                ? String.fromCharCode(parseInt(e.slice(1), 16))
                : e === 'n'
                  ? '\n'
                  : e === 't'
                    ? '\t'
                    : e === 'r'
                      ? '\r'
                      : e,
            ),
        );
        break;
      }
      case 0x54: // BINSTRING (py2 str: latin1)
        stack.push(latin1.decode(bytes(len32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(latin1.decode(bytes(u8())));
        break;
      case 0x56: // UNICODE (raw-unicode-escape line)
        stack.push(line().replace(/\\u([0-9a-fA-F]{4})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))));
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8.decode(bytes(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8.decode(bytes(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8.decode(bytes(u64())));
        break;
      case 0x42: // BINBYTES
        stack.push(bytes(u32()).slice());
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(bytes(u8()).slice());
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(bytes(u64()).slice());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        const l = top();
        if (!Array.isArray(l) || isTuple(l))
          throw new CheckpointError(`${src}: malformed pickle (APPEND to ${describe(l)})`);
        l.push(v);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const l = top();
        if (l instanceof Set) for (const v of items) l.add(v);
        else if (!Array.isArray(l) || isTuple(l))
          throw new CheckpointError(`${src}: malformed pickle (APPENDS to ${describe(l)})`);
        else for (const v of items) l.push(v);
        break;
      }
      case 0x6c: {
        // LIST
        const items = popMark(); // (popMark replaces `stack`: evaluate before pushing)
        stack.push(items);
        break;
      }
      case 0x29: // EMPTY_TUPLE
        stack.push(tuple([]));
        break;
      case 0x74: {
        // TUPLE
        const items = popMark();
        stack.push(tuple(items));
        break;
      }
      case 0x85: // TUPLE1
        stack.push(tuple([pop()]));
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b]));
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(tuple([a, b, c]));
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        const d = new Map();
        setItems(d, items);
        stack.push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) throw new CheckpointError(`${src}: malformed pickle (ADDITEMS to ${describe(s)})`);
        for (const v of items) s.add(v);
        break;
      }
      case 0x91: {
        // FROZENSET
        const items = popMark();
        stack.push(new Set(items));
        break;
      }
      case 0x63: {
        // GLOBAL
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string')
          throw new CheckpointError(`${src}: malformed pickle (STACK_GLOBAL)`);
        stack.push(global(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const f = callable(pop());
        if (!Array.isArray(args))
          throw new CheckpointError(`${src}: malformed pickle (REDUCE arguments are ${describe(args)})`);
        stack.push(call(f, args, false));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = callable(pop());
        stack.push(call(cls, Array.isArray(args) ? args : [], true));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        pop(); // kwargs
        const args = pop();
        const cls = callable(pop());
        stack.push(call(cls, Array.isArray(args) ? args : [], true));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const obj = top();
        if (obj instanceof PyObject || obj instanceof NumpyDtype) obj.state = state;
        else if (obj instanceof Map) {
          // OrderedDict instance attributes (state_dict._metadata): kept aside, not items.
          dictAttrs.set(obj, state);
        } else if (obj instanceof TensorRef || obj === null || typeof obj !== 'object') {
          // Tensor/parameter state (e.g. a Parameter's __dict__) carries no data we need.
        } else throw new CheckpointError(`${src}: malformed pickle (BUILD on ${describe(obj)})`);
        break;
      }
      case 0x69: {
        // INST
        const module = line();
        const name = line();
        const args = popMark();
        if (!isAllowedGlobal(module, name)) refuseGlobal(module, name);
        stack.push(call(new PyGlobal(module, name), args, true));
        break;
      }
      case 0x6f: {
        // OBJ
        const items = popMark();
        const cls = callable(items.shift());
        stack.push(call(cls, items, true));
        break;
      }
      case 0x70: // PUT
        memo.set(Number.parseInt(line(), 10), top());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x67: // GET
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const k = op === 0x67 ? Number.parseInt(line(), 10) : op === 0x68 ? u8() : u32();
        if (!memo.has(k)) throw new CheckpointError(`${src}: malformed pickle (memo key ${k} missing)`);
        stack.push(memo.get(k));
        break;
      }
      case 0x50: // PERSID
      case 0x51: {
        // BINPERSID
        const pid = op === 0x50 ? line() : pop();
        if (!opts.persistentLoad)
          throw new CheckpointError(`${src}: pickle references external data (persistent id) but none is available`);
        stack.push(opts.persistentLoad(pid));
        break;
      }
      case 0x82:
      case 0x83:
      case 0x84: // EXT1/2/4
        throw new CheckpointError(
          `${src}: pickle uses the copyreg extension registry (opcode 0x${op.toString(16)}), which checkpoints never need; refusing`,
        );
      case 0x97:
      case 0x98: // NEXT_BUFFER / READONLY_BUFFER
        throw new CheckpointError(`${src}: pickle uses out-of-band buffers (protocol 5), which checkpoints never need`);
      default:
        throw new CheckpointError(
          `${src}: not a valid pickle (unknown opcode 0x${op.toString(16).padStart(2, '0')} at byte ${p - 1})`,
        );
    }
  }
}

/** Python-ish string for a key (state_dict keys are str; others are rendered). */
export function keyString(k: unknown): string {
  return typeof k === 'string' ? k : String(k);
}
