// Package broker is renderfarm's connection to RabbitMQ: one long-lived AMQP
// connection per process that survives broker restarts and network loss.
//
// Everything the worker, the web tier and the CLI need from the broker goes
// through a *Conn (Dial waits for the first connection; Open, for servers,
// returns at once and connects in the background). Its URL may list a
// cluster's nodes, separated by ';' as in Celery's broker_url (urls.go); a
// Conn moves to the next node when its node goes.
//
//   - Declare remembers the topology it declared and declares it again after
//     every reconnect, because a restarted broker has lost every non-durable
//     queue and exchange (Celery's pidbox among them).
//   - Publish is mandatory and confirmed: it returns nil only once the broker
//     has taken responsibility for the message; PublishNow fails at once
//     while disconnected instead of waiting for the reconnect. Anything less (unroutable,
//     nacked, connection lost before the confirm) is a *PublishError, so a
//     caller never mistakes "written to a socket" for "delivered".
//   - Consume hands out deliveries on one Go channel that outlives reconnects.
//     Delivery tags belong to the AMQP channel they arrived on, so a Delivery
//     remembers that channel: settling it after the channel died returns
//     ErrStaleDelivery instead of acking some other message on a newer
//     channel. The broker redelivers it; consumers must be idempotent
//     (at-least-once).
//
// amqp091-go delivers notifications (confirms, returns, closes) synchronously
// from its single reader goroutine, so an unread notification channel stalls
// the whole connection. Each notification channel here has a goroutine that
// drains it until the library closes it.
package broker
