// Command benche2e is the Go side of tools/bench/e2e.sh: it talks to the
// local S3 (versitygw, configured from the AWS_* environment, path-style).
// Tasks are sent and results collected by tools/bench/e2e_client.py, a real
// Celery client.
//
//	benche2e -mode upload -buckets src,out -bucket src -copies 2 FILES...
//	    create the buckets, PutObject each file COPIES times as cK/BASENAME;
//	    prints the keys, one a line.
//	benche2e -mode timings -bucket B -prefix P
//	    sum the timings_ms of the job manifests under P (fetch, render,
//	    upload, total; status counts), and their span from first start to
//	    last finish.
//	benche2e -mode verify -bucket B -prefix P -want N
//	    count objects under P; fail unless exactly N.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	mode := flag.String("mode", "", "upload, timings or verify")
	buckets := flag.String("buckets", "", "upload: buckets to create")
	bucket := flag.String("bucket", "", "bucket")
	copies := flag.Int("copies", 2, "upload: copies of each file")
	prefix := flag.String("prefix", "", "verify: key prefix")
	want := flag.Int("want", 0, "verify: objects expected")
	timeout := flag.Duration("timeout", 10*time.Minute, "overall bound")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var (
		out any
		err error
	)
	switch *mode {
	case "upload":
		err = upload(ctx, strings.Split(*buckets, ","), *bucket, *copies, flag.Args())
	case "timings":
		out, err = timings(ctx, *bucket, *prefix)
	case "verify":
		var got int
		got, err = count(ctx, s3Client(ctx), *bucket, *prefix)
		if err == nil && got != *want {
			err = fmt.Errorf("s3://%s/%s holds %d objects, want %d", *bucket, *prefix, got, *want)
		}
		out = map[string]int{"objects": got}
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benche2e:", err)
		os.Exit(1)
	}
	if out != nil {
		_ = json.NewEncoder(os.Stdout).Encode(out)
	}
}

func s3Client(ctx context.Context) *s3.Client {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benche2e: aws config:", err)
		os.Exit(1)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

func upload(ctx context.Context, buckets []string, bucket string, copies int, files []string) error {
	c := s3Client(ctx)
	for _, b := range buckets {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	for k := range copies {
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			key := fmt.Sprintf("c%d/%s", k, filepath.Base(f))
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
				Body: bytes.NewReader(data), ContentType: aws.String("image/jpeg")}); err != nil {
				return fmt.Errorf("put %s: %w", key, err)
			}
			fmt.Println(key)
		}
	}
	return nil
}

func count(ctx context.Context, c *s3.Client, bucket, prefix string) (int, error) {
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		n += len(page.Contents)
	}
	return n, nil
}

type timingsResult struct {
	Jobs     int            `json:"jobs"`
	Status   map[string]int `json:"status"`
	FetchS   float64        `json:"fetch_s"`
	RenderS  float64        `json:"render_s"`
	UploadS  float64        `json:"upload_s"`
	TotalS   float64        `json:"total_s"`
	SpanS    float64        `json:"span_s"` // first Started to last Finished
	Attempts int            `json:"attempts"`
}

func timings(ctx context.Context, bucket, prefix string) (*timingsResult, error) {
	c := s3Client(ctx)
	res := &timingsResult{Status: map[string]int{}}
	var first, last time.Time
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				return nil, err
			}
			var m struct {
				Status   string    `json:"status"`
				Attempts int       `json:"attempts"`
				Started  time.Time `json:"started"`
				Finished time.Time `json:"finished"`
				Result   *struct {
					T struct{ Fetch, Render, Upload, Total float64 } `json:"timings_ms"`
				} `json:"result"`
			}
			err = json.NewDecoder(g.Body).Decode(&m)
			g.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", *o.Key, err)
			}
			res.Jobs++
			res.Status[m.Status]++
			res.Attempts += m.Attempts
			if m.Result != nil {
				res.FetchS += m.Result.T.Fetch / 1000
				res.RenderS += m.Result.T.Render / 1000
				res.UploadS += m.Result.T.Upload / 1000
				res.TotalS += m.Result.T.Total / 1000
			}
			if first.IsZero() || m.Started.Before(first) {
				first = m.Started
			}
			if m.Finished.After(last) {
				last = m.Finished
			}
		}
	}
	res.SpanS = last.Sub(first).Seconds()
	return res, nil
}
