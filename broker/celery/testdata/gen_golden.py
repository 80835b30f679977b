#!/usr/bin/python3
"""Generate the golden files the Go tests of broker/celery compare against.

Run with Debian's interpreter, which has python3-celery (celery 5.2.6,
kombu 5.2.4, py-amqp 5.1.1):

    /usr/bin/python3 broker/celery/testdata/gen_golden.py

Nothing here talks to a broker: apps use the memory transport and kombu's
Producer._publish is replaced by a recorder, so every message is captured
exactly as kombu hands it to py-amqp (body string, content type/encoding,
application headers, properties).  Headers are also written as py-amqp would
put them in the frame (`headers_amqp`, base64 of the field table), so the Go
tests see the same AMQP value types amqp091-go would deliver.

Everything that would vary between runs (task ids, clock, pid, "now", origin,
reply queue oid) is pinned, so re-running produces identical files.
"""

import base64
import datetime as dt
import decimal
import itertools
import json
import math
import os
import sys
import time
import uuid as uuidlib

os.environ['TZ'] = 'UTC'
time.tzset()

import amqp.serialization  # noqa: E402
import kombu.messaging  # noqa: E402
import kombu.pidbox  # noqa: E402
from kombu.serialization import loads as kombu_loads  # noqa: E402

import celery  # noqa: E402
import celery.app.amqp  # noqa: E402
import celery.app.base  # noqa: E402
import celery.backends.base  # noqa: E402
import celery.canvas  # noqa: E402
import celery.events.dispatcher  # noqa: E402
from celery import Celery, chain, group  # noqa: E402
from celery.app.task import Context  # noqa: E402
from celery.exceptions import NotRegistered, TaskRevokedError  # noqa: E402
from celery.utils.saferepr import saferepr  # noqa: E402
from celery.utils.time import maybe_iso8601, maybe_make_aware  # noqa: E402
from celery.worker.strategy import hybrid_to_proto2, proto1_to_proto2  # noqa: E402
from billiard.exceptions import TimeLimitExceeded  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'golden')

ORIGIN = 'gen4242@golden'
ORACLE_OID = 'c0ffee00-0000-4000-8000-000000000000'
NOW = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc)
WORKER = 'worker1@golden'

# ---------------------------------------------------------------------------
# Pin everything that varies.

_ids = itertools.count(1)


def fixed_uuid():
    return str(uuidlib.UUID(int=0x5eed0000_0000_4000_8000_000000000000 + next(_ids)))


celery.canvas.uuid = fixed_uuid
celery.app.base.uuid = fixed_uuid
celery.app.amqp.anon_nodename = lambda *a, **kw: ORIGIN
Celery.thread_oid = property(lambda self: ORACLE_OID)
Celery.now = lambda self: NOW
kombu.pidbox.Mailbox.oid = property(lambda self: ORACLE_OID)
kombu.pidbox.time = lambda: 1700000000.5


class _FixedDatetime(dt.datetime):
    @classmethod
    def utcnow(cls):
        return cls(2024, 5, 6, 7, 8, 10, 654321)


celery.backends.base.datetime = _FixedDatetime

captured = []


def _record(self, body, priority, content_type, content_encoding, headers,
            properties, routing_key, mandatory, immediate, exchange, declare,
            timeout=None):
    if isinstance(body, bytes):
        body = body.decode('utf-8')
    props = dict(properties)
    props.pop('delivery_info', None)
    captured.append({
        'exchange': exchange or '',
        'routing_key': routing_key or '',
        'body': body,
        'content_type': content_type,
        'content_encoding': content_encoding,
        'priority': priority,
        'headers': dict(headers or {}),
        'properties': props,
    })


kombu.messaging.Producer._publish = _record


def take():
    assert len(captured) == 1, captured
    return captured.pop()


# ---------------------------------------------------------------------------
# Serialisation helpers.

def jsonable(v):
    """Python value -> JSON-able value, for the descriptive parts."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return repr(v)
    return v


def wire(cap):
    """The message as it goes on the wire."""
    props = cap['properties']
    out = {
        'exchange': cap['exchange'],
        'routing_key': cap['routing_key'],
        'properties': {
            'content_type': cap['content_type'],
            'content_encoding': cap['content_encoding'],
            'delivery_mode': props.get('delivery_mode'),
            'priority': cap['priority'] or 0,
            'correlation_id': props.get('correlation_id', ''),
            'reply_to': props.get('reply_to', ''),
            'expiration': props.get('expiration', ''),
        },
        'headers': jsonable(cap['headers']),
        'headers_amqp': base64.b64encode(
            amqp.serialization.dumps('F', [cap['headers']])).decode(),
        'body': cap['body'],
    }
    extra = set(props) - {'delivery_mode', 'correlation_id', 'reply_to',
                          'expiration'}
    assert not extra, extra
    return out


def write(name, doc):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + '.json'), 'w', encoding='utf-8') as f:
        json.dump(doc, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write('\n')


def utc_iso(value, tz=None):
    """How a 5.2 worker reads an eta/expires value, as UTC ISO."""
    if value is None:
        return None
    d = maybe_iso8601(value)
    if d is None:
        return None
    return maybe_make_aware(d, tz).astimezone(dt.timezone.utc).isoformat()


class FakeMessage:
    def __init__(self, headers, payload):
        self.headers = headers
        self.payload = payload


def worker_view(cap, app):
    """What a 5.2 worker makes of a captured task message."""
    body = kombu_loads(cap['body'].encode('utf-8'), cap['content_type'],
                       cap['content_encoding'], accept=['application/json'])
    headers = dict(cap['headers'])
    message = FakeMessage(headers, body)
    if 'task' in headers and not (isinstance(body, dict) and 'args' in body):
        protocol = 2
        (args, kwargs, embed), req = body, headers
    elif 'task' in headers:
        protocol = 1
        (args, kwargs, embed), req, _, _ = hybrid_to_proto2(message, body)
    else:
        protocol = 1
        (args, kwargs, embed), req, _, _ = proto1_to_proto2(message, dict(body))
    embed = embed or {}
    timelimit = req.get('timelimit') or [None, None]
    modeled = {'lang', 'task', 'id', 'shadow', 'eta', 'expires', 'group',
               'group_index', 'retries', 'timelimit', 'root_id', 'parent_id',
               'argsrepr', 'kwargsrepr', 'origin', 'ignore_result'}
    custom = {k: v for k, v in headers.items() if k not in modeled}
    props = cap['properties']
    return {
        'protocol': protocol,
        'id': req['id'],
        'task': req['task'],
        'args': list(args),
        'kwargs': kwargs,
        'embed': {
            'callbacks': embed.get('callbacks'),
            'errbacks': embed.get('errbacks'),
            'chain': embed.get('chain'),
            'chord': embed.get('chord'),
        },
        'retries': req.get('retries') or 0,
        'eta': utc_iso(req.get('eta'), app.conf.timezone),
        'expires': utc_iso(req.get('expires'), app.conf.timezone),
        'timelimit': list(timelimit),
        'root_id': req.get('root_id') or '',
        'parent_id': req.get('parent_id') or '',
        'group_id': req.get('group') or '',
        'group_index': req.get('group_index'),
        'shadow': req.get('shadow') or '',
        'origin': req.get('origin') or '',
        'ignore_result': bool(req.get('ignore_result', False)),
        'argsrepr': req.get('argsrepr') or '',
        'kwargsrepr': req.get('kwargsrepr') or '',
        'reply_to': props.get('reply_to', ''),
        'correlation_id': props.get('correlation_id', ''),
        'priority': cap['priority'] or 0,
        'custom_headers': jsonable(custom),
    }


def task_golden(name, description, app, send):
    send()
    cap = take()
    doc = wire(cap)
    doc.update(kind='task', description=description,
               expect=jsonable(worker_view(cap, app)),
               params={'now': NOW.isoformat(), 'origin': ORIGIN})
    write(name, doc)
    return doc


# ---------------------------------------------------------------------------
# Task messages.

def make_app(**conf):
    app = Celery('golden', broker='memory://', set_as_current=False)
    app.conf.update(**conf)
    for n in ('tasks.add', 'tasks.mul', 'tasks.tsum', 'tasks.on_error',
              'tasks.render'):
        def body(*args, **kwargs):
            return None
        app.task(name=n, shared=False)(body)
    return app


def gen_tasks():
    app = make_app()
    add = app.tasks['tasks.add']
    mul = app.tasks['tasks.mul']
    tsum = app.tasks['tasks.tsum']
    on_error = app.tasks['tasks.on_error']
    render = app.tasks['tasks.render']
    tid = 'd1b2c3d4-0000-4000-8000-00000000000'

    task_golden('task_v2_plain', 'add.apply_async((2, 3), {"z": 4})', app,
                lambda: add.apply_async((2, 3), {'z': 4}, task_id=tid + '1'))
    task_golden('task_v2_empty', 'add.delay() with no arguments', app,
                lambda: add.apply_async(task_id=tid + '2'))
    task_golden('task_v2_countdown', 'countdown=30 (now pinned)', app,
                lambda: add.apply_async((1, 1), countdown=30,
                                        task_id=tid + '3'))
    task_golden('task_v2_eta_offset', 'eta with a +05:30 offset', app,
                lambda: add.apply_async(
                    (1,), eta=dt.datetime(2030, 1, 2, 3, 4, 5, 678901,
                                          tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
                    task_id=tid + '4'))
    task_golden('task_v2_expires', 'expires=60 (seconds)', app,
                lambda: add.apply_async((1,), expires=60, task_id=tid + '5'))
    task_golden('task_v2_expires_datetime', 'expires as an aware datetime', app,
                lambda: add.apply_async(
                    (1,), expires=NOW + dt.timedelta(seconds=90, microseconds=500),
                    task_id=tid + '6'))
    task_golden('task_v2_timelimit', 'time_limit=30, soft_time_limit=20.5', app,
                lambda: add.apply_async((1,), time_limit=30,
                                        soft_time_limit=20.5,
                                        task_id=tid + '7'))
    task_golden('task_v2_link', 'link=mul.s(10), link_error=on_error.si("x")',
                app,
                lambda: add.apply_async((2, 2), link=mul.s(10),
                                        link_error=on_error.si('x'),
                                        task_id=tid + '8'))
    task_golden('task_v2_chain', 'chain(add.s(1, 2), mul.s(3), tsum.s()) applied',
                app, lambda: chain(add.s(1, 2), mul.s(3), tsum.s()).apply_async())
    task_golden('task_v2_group', 'first message of group(add.s(1,1), add.s(2,2))',
                app, lambda: (group(add.s(1, 1), add.s(2, 2)).apply_async(),
                              captured.__delitem__(1)))
    task_golden('task_v2_ignore_result', 'ignore_result=True', app,
                lambda: add.apply_async((1, 2), ignore_result=True,
                                        task_id=tid + '9'))
    task_golden('task_v2_custom_headers', 'headers={...}, priority=7, shadow', app,
                lambda: render.apply_async(
                    ('scene.blend',), headers={'x-trace': 'abc-123', 'x-attempt': 3,
                                               'x-ratio': 0.5, 'x-flags': ['a', 'b'],
                                               'x-meta': {'k': 'v', 'n': None}},
                    priority=7, shadow='render[scene.blend]',
                    task_id=tid + 'a'))
    task_golden('task_v2_unicode_nested', 'unicode, nested and large values', app,
                lambda: render.apply_async(
                    ('héllo ☃ 😀', "it's", 'say "hi"', 'tab\tnew\nline\\',
                     {'nested': [1, 2.5, None, True, False, {'deep': ['x', [[[1]]]]}]},
                     [1e100, 1e16, 1e-05, 0.1, -0.0, 3.0, 123456789.125]),
                    {'ключ': 'значение', 'big': 2 ** 70, 'neg': -2 ** 63,
                     'max': 2 ** 63 - 1, 'empty': {}, 'list': []},
                    task_id=tid + 'b'))
    task_golden('task_v2_long_repr', 'argsrepr truncated at 1024 characters', app,
                lambda: render.apply_async(
                    (['frame-%04d' % i for i in range(200)],),
                    {'opts': {'a': {'b': {'c': {'d': 1}}}}},
                    task_id=tid + 'c'))
    task_golden('task_v2_retry_like', 'retries=3, parent/root ids, group', app,
                lambda: app.send_task('tasks.add', (1, 2), task_id=tid + 'd',
                                      retries=3, root_id='root-1',
                                      parent_id='parent-1', group_id='group-1',
                                      group_index=4, reply_to='client-reply'))

    app1 = make_app(task_protocol=1)
    add1 = app1.tasks['tasks.add']
    task_golden('task_v1', 'task_protocol=1', app1,
                lambda: add1.apply_async((2, 3), {'z': 4}, countdown=10,
                                         expires=60, time_limit=5,
                                         link=app1.tasks['tasks.mul'].s(2),
                                         task_id=tid + 'e'))

    # enable_utc=False with a naive eta: the body says utc: false.
    app1l = make_app(task_protocol=1, enable_utc=False)
    doc = task_golden('task_v1_local', 'task_protocol=1, enable_utc=False, naive eta',
                      app1l,
                      lambda: app1l.tasks['tasks.add'].apply_async(
                          (1,), eta=dt.datetime(2030, 1, 1, 12, 0, 0),
                          task_id=tid + 'f'))
    # A 5.2 worker reads the naive time as UTC whatever `utc` says
    # (maybe_make_aware does to_utc first); the intent of utc=false, and what
    # the Go decoder does, is the sender's local time.  Record both.
    local = dt.timezone(dt.timedelta(hours=5, minutes=30))
    doc['params']['local_offset_seconds'] = 19800
    doc['python_52_eta'] = doc['expect']['eta']
    doc['expect']['eta'] = dt.datetime(2030, 1, 1, 12, 0, tzinfo=local).astimezone(
        dt.timezone.utc).isoformat()
    write('task_v1_local', doc)

    # The hybrid form: a task header, but a v1 dict body.
    body = {'task': 'tasks.add', 'id': tid + '0', 'args': [4, 5],
            'kwargs': {'k': 'v'}, 'retries': 1,
            'eta': '2030-01-01T00:00:00+00:00', 'utc': True,
            'callbacks': None, 'errbacks': None, 'timelimit': [None, 7],
            'taskset': None, 'chord': None, 'root_id': 'root-h'}
    cap = {
        'exchange': '', 'routing_key': 'celery',
        'body': json.dumps(body), 'content_type': 'application/json',
        'content_encoding': 'utf-8', 'priority': 0,
        'headers': {'task': 'tasks.add', 'id': tid + '0', 'parent_id': 'parent-h',
                    'x-custom': 'kept'},
        'properties': {'delivery_mode': 2, 'correlation_id': tid + '0',
                       'reply_to': 'client-reply'},
    }
    doc = wire(cap)
    doc.update(kind='task', description='hybrid: task header, v1 dict body',
               expect=jsonable(worker_view(cap, app)), params={})
    write('task_hybrid', doc)


# ---------------------------------------------------------------------------
# kombu >= 5.3 typed values (Debian has 5.2, so the encoder is restated here
# from kombu 5.3's kombu/utils/json.py).

def _as(t, v):
    return {'__type__': t, '__value__': v}


class Kombu53Encoder(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, dt.datetime):
            return _as('datetime', o.isoformat())
        if isinstance(o, dt.date):
            return _as('date', o.isoformat())
        if isinstance(o, dt.time):
            return _as('time', o.isoformat())
        if isinstance(o, decimal.Decimal):
            return _as('decimal', str(o))
        if isinstance(o, uuidlib.UUID):
            # 5.3.0 sent the hex string; later 5.3.x send {"hex", "version"}.
            return _as('uuid', {'hex': o.hex, 'version': o.version})
        if isinstance(o, bytes):
            try:
                return _as('bytes', o.decode('utf-8'))
            except UnicodeDecodeError:
                return _as('base64', base64.b64encode(o).decode('utf-8'))
        return super().default(o)


def gen_typed():
    tz2 = dt.timezone(dt.timedelta(hours=-2))
    u = uuidlib.UUID('12345678-1234-5678-1234-567812345678')
    args = [
        dt.datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=tz2),
        dt.datetime(2024, 1, 2, 3, 4, 5),
        dt.date(2024, 2, 29),
        dt.time(13, 14, 15, 16),
        decimal.Decimal('12345678901234567890.123456789'),
        u,
        b'plain bytes',
        b'\xff\x00\xfe',
    ]
    kwargs = {'when': args[0], 'nested': [{'id': u, 'raw': b'\x01\x02'}],
              'legacy_uuid': _as('uuid', u.hex)}
    tid = 'e1b2c3d4-0000-4000-8000-000000000001'
    body = json.dumps([args, kwargs, {'callbacks': None, 'errbacks': None,
                                      'chain': None, 'chord': None}],
                      cls=Kombu53Encoder)
    headers = {'lang': 'py', 'task': 'tasks.render', 'id': tid, 'shadow': None,
               'eta': None, 'expires': None, 'group': None, 'group_index': None,
               'retries': 0, 'timelimit': [None, None], 'root_id': tid,
               'parent_id': None, 'argsrepr': saferepr(tuple(args), 1024),
               'kwargsrepr': saferepr(kwargs, 1024), 'origin': ORIGIN,
               'ignore_result': False}
    cap = {'exchange': '', 'routing_key': 'celery', 'body': body,
           'content_type': 'application/json', 'content_encoding': 'utf-8',
           'priority': 0, 'headers': headers,
           'properties': {'delivery_mode': 2, 'correlation_id': tid,
                          'reply_to': ORACLE_OID}}
    doc = wire(cap)

    def go_view(v):
        # What the Go decoder is expected to produce, spelled in JSON with
        # markers for the non-JSON Go types.
        if isinstance(v, dt.datetime):
            if v.tzinfo is None:
                v = v.replace(tzinfo=dt.timezone.utc)
            return {'time': v.astimezone(dt.timezone.utc).isoformat()}
        if isinstance(v, dt.date):
            return {'time': dt.datetime(v.year, v.month, v.day,
                                        tzinfo=dt.timezone.utc).isoformat()}
        if isinstance(v, dt.time):
            return v.isoformat()
        if isinstance(v, (decimal.Decimal, uuidlib.UUID)):
            return str(v)
        if isinstance(v, bytes):
            return {'bytes': base64.b64encode(v).decode()}
        if isinstance(v, dict) and set(v) == {'__type__', '__value__'}:
            return str(uuidlib.UUID(v['__value__']))
        if isinstance(v, dict):
            return {k: go_view(x) for k, x in v.items()}
        if isinstance(v, list):
            return [go_view(x) for x in v]
        return v

    doc.update(kind='typed', description='kombu 5.3 typed values in args/kwargs',
               expect={'args': go_view(args), 'kwargs': go_view(kwargs)},
               params={})
    write('task_v2_typed_kombu53', doc)


# ---------------------------------------------------------------------------
# Results.

def gen_results():
    app = Celery('golden', broker='memory://', backend='rpc://',
                 set_as_current=False)
    backend = app.backend
    tid = 'f1b2c3d4-0000-4000-8000-00000000000'

    def req(i, **kw):
        return Context(id=tid + i, reply_to='client-reply',
                       correlation_id=tid + i, children=[], **kw)

    def rpc(name, description, fn, exc=None):
        fn()
        cap = take()
        doc = wire(cap)
        body = json.loads(cap['body'])
        doc.update(kind='rpc_result', description=description, params={})
        if exc is not None:
            doc['exception_repr'] = repr(exc)
        write(name, doc)
        return body

    rpc('result_rpc_success', 'rpc SUCCESS with a dict result',
        lambda: backend.store_result(tid + '1', {'frames': 240, 'ok': True,
                                                 'ratio': 1.5}, 'SUCCESS',
                                     request=req('1')))
    err = ValueError('boom', 42)
    rpc('result_rpc_failure', 'rpc FAILURE ValueError("boom", 42)',
        lambda: backend.mark_as_failure(
            tid + '2', err, traceback='Traceback (most recent call last):\n  ...\nValueError: boom\n',
            request=req('2')), err)
    nr = NotRegistered('tasks.missing')
    rpc('result_rpc_not_registered', 'rpc FAILURE NotRegistered, as on_unknown_task',
        lambda: backend.mark_as_failure(tid + '3', nr, request=req('3')), nr)
    rpc('result_rpc_revoked', 'rpc REVOKED, mark_as_revoked(reason="expired")',
        lambda: backend.mark_as_revoked(tid + '4', 'expired', request=req('4')),
        TaskRevokedError('expired'))
    tle = TimeLimitExceeded(10)
    rpc('result_rpc_time_limit', 'rpc FAILURE TimeLimitExceeded(10)',
        lambda: backend.mark_as_failure(tid + '5', tle, request=req('5')), tle)
    rexc = KeyError('missing')
    rpc('result_rpc_retry', 'rpc RETRY with the exception',
        lambda: backend.mark_as_retry(tid + '6', rexc, traceback='tb', request=req('6')),
        rexc)
    rpc('result_rpc_started', 'rpc STARTED (track_started)',
        lambda: backend.store_result(tid + '7', {'pid': 1, 'hostname': WORKER},
                                     'STARTED', request=req('7')))

    # The key/value backends (redis) store the meta under celery-task-meta-<id>.
    kv = Celery('golden', broker='memory://', backend='cache+memory://',
                set_as_current=False).backend
    stored = []
    kv._set_with_state = lambda key, value, state: stored.append((key, value))

    def kvgold(name, description, fn):
        fn()
        key, value = stored.pop()
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(key, bytes):
            key = key.decode()
        write(name, {'kind': 'stored_result', 'description': description,
                     'key': key, 'value': value,
                     'params': {'date_done': _FixedDatetime.utcnow().isoformat()}})

    kvgold('result_stored_success', 'key/value backend SUCCESS',
           lambda: kv.store_result(tid + '8', [1, 2, 3], 'SUCCESS',
                                   request=req('8', group='grp-1', parent_id='par-1')))
    kvgold('result_stored_failure', 'key/value backend FAILURE',
           lambda: kv.mark_as_failure(tid + '9', err, traceback='tb',
                                      request=req('9')))
    kvgold('result_stored_started', 'key/value backend STARTED: no date_done',
           lambda: kv.store_result(tid + 'a', None, 'STARTED', request=req('a')))


# ---------------------------------------------------------------------------
# Events.

def gen_events():
    for name, tz, offset in (('west', 'XXX+3:30', -12600), ('east', 'IST-5:30', 19800)):
        os.environ['TZ'] = tz
        time.tzset()
        app = Celery('golden', broker='memory://', set_as_current=False)
        conn = app.connection_for_write()
        d = app.events.Dispatcher(conn, hostname=WORKER, enabled=True)
        d.pid = 4242
        app.clock.value = 41
        d.send('worker-heartbeat', timestamp=1700000000.25, freq=2.0, active=1,
               processed=10, loadavg=[0.5, 0.25, 0.0], sw_ident='py-celery',
               sw_ver='5.2.6', sw_sys='Linux')
        cap = take()
        doc = wire(cap)
        doc.update(kind='event', description='worker-heartbeat, TZ ' + tz,
                   params={'pid': 4242, 'clock': 42, 'timestamp': 1700000000.25,
                           'zone_offset_seconds': offset, 'hostname': WORKER})
        write('event_heartbeat_' + name, doc)
    os.environ['TZ'] = 'UTC'
    time.tzset()

    app = Celery('golden', broker='memory://', set_as_current=False)
    conn = app.connection_for_write()
    d = app.events.Dispatcher(conn, hostname=WORKER, enabled=True,
                              buffer_group=['task'])
    d.pid = 4242
    app.clock.value = 99
    d.send('task-received', timestamp=1700000001.0, uuid='t-1',
           name='tasks.add', args='(2, 3)', kwargs='{}', root_id='t-1',
           parent_id=None, retries=0, eta=None, expires=None)
    d.send('task-succeeded', timestamp=1700000002.5, uuid='t-1',
           result=saferepr({'ok': "it's"}, 1024), runtime=0.015625)
    assert not captured
    d.flush()
    cap = take()
    doc = wire(cap)
    doc.update(kind='event_multi', description='buffered task events, flushed as task.multi',
               params={'pid': 4242, 'clocks': [100, 101], 'hostname': WORKER,
                       'zone_offset_seconds': 0})
    write('event_task_multi', doc)


# ---------------------------------------------------------------------------
# Remote control.

def gen_control():
    app = Celery('golden', broker='memory://', set_as_current=False)
    conn = app.connection_for_write()
    chan = conn.default_channel
    mailbox = app.control.mailbox(conn)

    def req(name, description, **kw):
        mailbox.clock.value = 9
        mailbox._publish(channel=chan, **kw)
        cap = take()
        doc = wire(cap)
        doc.update(kind='control_request', description=description,
                   params={'now': 1700000000.5})
        write(name, doc)

    req('control_ping', 'ping to one worker, with reply',
        type='ping', arguments={}, destination=[WORKER],
        reply_ticket='ticket-1', timeout=1.0)
    req('control_cast', 'enable_events cast to everyone (no reply)',
        type='enable_events', arguments={}, destination=None, timeout=None)
    req('control_pattern', 'inspect active with a glob pattern',
        type='active', arguments={'safe': None}, destination=None,
        reply_ticket='ticket-2', timeout=1.0, pattern='worker*@golden',
        matcher='glob')
    req('control_revoke', 'revoke with terminate',
        type='revoke', arguments={'task_id': ['a', 'b'], 'terminate': True,
                                  'signal': 'SIGKILL'},
        destination=None, reply_ticket='ticket-3', timeout=1.0)

    node = mailbox.Node(WORKER, channel=chan)
    mailbox.clock.value = 19
    node.reply({WORKER: {'ok': 'pong'}}, exchange='reply.celery.pidbox',
               routing_key=ORACLE_OID, ticket='ticket-1')
    cap = take()
    doc = wire(cap)
    doc.update(kind='control_reply', description='ping reply',
               params={'hostname': WORKER, 'ticket': 'ticket-1', 'clock': 20})
    write('control_reply', doc)

    # Which nodes a request reaches: kombu Node.handle_message itself.
    cases = []
    hosts = ['worker1@golden', 'worker2@golden', 'render@farm-1', 'a/b@c']
    requests = [
        {'destination': None},
        {'destination': []},
        {'destination': ['worker1@golden']},
        {'destination': ['render@farm-1', 'worker2@golden']},
        {'destination': None, 'pattern': 'worker*', 'matcher': 'glob'},
        {'destination': None, 'pattern': 'worker?@golden', 'matcher': 'glob'},
        {'destination': None, 'pattern': '[!w]*', 'matcher': 'glob'},
        {'destination': None, 'pattern': '*[0-9]', 'matcher': 'glob'},
        {'destination': None, 'pattern': 'a/*', 'matcher': 'glob'},
        {'destination': None, 'pattern': '[', 'matcher': 'glob'},
        {'destination': None, 'pattern': 'render', 'matcher': 'pcre'},
        {'destination': None, 'pattern': r'worker\d@', 'matcher': 'pcre'},
        {'destination': None, 'pattern': 'golden', 'matcher': 'pcre'},
        {'destination': None, 'pattern': '.*golden$', 'matcher': 'pcre'},
        {'destination': None, 'pattern': 'worker*'},
        {'destination': ['render@farm-1'], 'pattern': 'worker*', 'matcher': 'glob'},
        {'destination': None, 'pattern': 'x', 'matcher': 'nosuch'},
    ]
    for r in requests:
        for h in hosts:
            n = mailbox.Node(h, channel=chan)
            n.dispatch = lambda **kw: 'dispatched'
            body = dict(method='ping', arguments={}, **r)
            try:
                got = n.handle_message(body, None) == 'dispatched'
            except Exception as exc:  # MatcherNotInstalled
                got = False
            cases.append({'hostname': h, 'request': r, 'for': got})
    write('control_for', {'kind': 'control_for', 'cases': cases})


# ---------------------------------------------------------------------------
# repr / saferepr.

def gen_repr():
    values = [
        None, True, False, 0, 1, -1, 2 ** 31, 2 ** 63 - 1, -2 ** 63, 2 ** 70,
        -2 ** 80, 1.0, -0.0, 0.1, 1.5, 1e16, 1e15, 123456789012345.6, 1e-05,
        0.0001, 1e100, 1.7976931348623157e308, 5e-324, 2.5e-07, 1e22, 12345.678,
        float('inf'), float('-inf'), float('nan'),
        '', 'plain', "it's", 'say "hi"', 'both \' and "', 'back\\slash',
        'tab\tnl\ncr\r', '\x00\x1f\x7f', 'é☃😀', '\xa0\xad\u200b\u2028',
        '\ud7ff\ue000\uffff', '\U000e0001', 'ascii only', '{}[]()',
        [], {}, [1, 2, 3], ['a', ['b', ['c', ['d', ['e']]]]],
        {'a': 1, 'b': [1, 2], 'c': {'d': {'e': {'f': 1}}}},
        {"it's": "v", 'z': None}, [None, True, 1.0, 'x'],
        ['word ' * 30], 'word ' * 40, list(range(60)),
        {'k%02d' % i: i for i in range(30)},
        [[1, [2, [3, [4, [5]]]]], {'x': [{'y': [1]}]}],
    ]
    maxlens = [0, 1, 5, 10, 20, 40, 100, 1024]
    cases = []
    for v in values:
        case = {
            'json': json.dumps(v),
            'repr': repr(v),
            'saferepr': {str(m): saferepr(v, m or None) for m in maxlens},
        }
        if isinstance(v, list):
            case['argsrepr'] = saferepr(tuple(v), 1024)
            case['argsrepr_short'] = saferepr(tuple(v), 20)
        cases.append(case)
    # Typed values, as the Go decoder turns them into Go types.
    for v in (dt.datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=dt.timezone.utc),
              dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.timezone.utc),
              dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-2))),
              dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
              b'bytes \'q\' \\ \n\x00\xff', b'', b'"'):
        cases.append({'json': json.dumps(v, cls=Kombu53Encoder), 'repr': repr(v),
                      'saferepr': {str(m): saferepr(v, m or None) for m in maxlens}})
    exceptions = [
        {'exc_type': 'ValueError', 'exc_module': 'builtins', 'exc_message': ['boom', 42],
         'repr': repr(ValueError('boom', 42))},
        {'exc_type': 'ValueError', 'exc_module': 'builtins', 'exc_message': ['boom'],
         'repr': repr(ValueError('boom'))},
        {'exc_type': 'RuntimeError', 'exc_module': 'builtins', 'exc_message': [],
         'repr': repr(RuntimeError())},
        {'exc_type': 'TimeLimitExceeded', 'exc_module': 'billiard.exceptions',
         'exc_message': [10], 'repr': repr(TimeLimitExceeded(10))},
        {'exc_type': 'TaskRevokedError', 'exc_module': 'celery.exceptions',
         'exc_message': ['expired'], 'repr': repr(TaskRevokedError('expired'))},
    ]
    write('repr', {'kind': 'repr', 'cases': cases, 'exceptions': exceptions})


def main():
    if os.path.isdir(OUT):
        for f in os.listdir(OUT):
            if f.endswith('.json'):
                os.remove(os.path.join(OUT, f))
    gen_tasks()
    gen_typed()
    gen_results()
    gen_events()
    gen_control()
    gen_repr()
    assert not captured, captured
    print('wrote', len(os.listdir(OUT)), 'golden files to', OUT,
          '(celery %s)' % celery.__version__, file=sys.stderr)


if __name__ == '__main__':
    main()
