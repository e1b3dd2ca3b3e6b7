/* ctower: network clients and servers as services, on libuv.
 * This header includes every public header. */
#ifndef CTOWER_H
#define CTOWER_H

#include "ctower/error.h"
#include "ctower/loop.h"
#include "ctower/waker.h"
#include "ctower/op.h"
#include "ctower/context.h"
#include "ctower/stats.h"
#include "ctower/service.h"
#include "ctower/service_fn.h"
#include "ctower/budget.h"
#include "ctower/buf.h"
#include "ctower/transport.h"
#include "ctower/channel.h"
#include "ctower/codec.h"
#include "ctower/codec/length.h"
#include "ctower/codec/line.h"
#include "ctower/codec/resp.h"
#include "ctower/codec/http.h"
#include "ctower/codec/raw.h"
#include "ctower/tls.h"
#include "ctower/stream.h"
#include "ctower/http2.h"
#include "ctower/address.h"
#include "ctower/connector.h"
#include "ctower/listener.h"
#include "ctower/tag_store.h"
#include "ctower/client.h"
#include "ctower/server.h"
#include "ctower/pipeline.h"
#include "ctower/multiplex.h"
#include "ctower/layer/timeout.h"
#include "ctower/layer/reconnect.h"
#include "ctower/layer/retry.h"
#include "ctower/layer/balance.h"
#include "ctower/layer/limit.h"
#include "ctower/layer/buffer.h"
#include "ctower/layer/hedge.h"
#include "ctower/layer/shard.h"
#include "ctower/layer/breaker.h"
#include "ctower/layer/observe.h"

#define CTOWER_VERSION_MAJOR 0
#define CTOWER_VERSION_MINOR 1
#define CTOWER_VERSION_PATCH 0

#endif
