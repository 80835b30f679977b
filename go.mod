module github.com/renderfarm/renderfarm

go 1.26.8

require (
	github.com/davidbyttow/govips/v2 v2.16.0
	github.com/google/uuid v1.6.0
	github.com/rabbitmq/amqp091-go v1.10.0
	github.com/urfave/cli/v2 v2.27.5
	golang.org/x/image v0.18.0
	golang.org/x/sync v0.10.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/cpuguy83/go-md2man/v2 v2.0.5 // indirect
	github.com/russross/blackfriday/v2 v2.1.0 // indirect
	github.com/xrash/smetrics v0.0.0-20240521201337-686a1a2994c1 // indirect
	golang.org/x/net v0.25.0 // indirect
	golang.org/x/text v0.16.0 // indirect
)
