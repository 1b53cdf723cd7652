package metrics

import (
	"fmt"
	"sync"

	"github.com/moby/buildkit/util/tracing/detect"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

var (
	meterOnce     sync.Once
	meterProvider *sdkmetric.MeterProvider
	meterErr      error
)

// MeterProvider is the OpenTelemetry meter provider to hand BuildKit (its
// controller and gRPC server record their metrics to it): OTel's
// Prometheus exporter reads it into the default registry, as buildkitd
// does, so BuildKit's metrics are scraped with ours. It is made once per
// process, as the exporter can register with the registry only once.
func MeterProvider() (*sdkmetric.MeterProvider, error) {
	meterOnce.Do(func() {
		reader, err := otelprom.New()
		if err != nil {
			meterErr = fmt.Errorf("metrics: OpenTelemetry Prometheus exporter: %w", err)
			return
		}
		meterProvider = sdkmetric.NewMeterProvider(
			sdkmetric.WithResource(detect.Resource()),
			sdkmetric.WithReader(reader),
			sdkmetric.WithView(buildDurationView()),
		)
	})
	return meterProvider, meterErr
}

// buildDurationView is buildkitd's (cmd/buildkitd/main.go): BuildKit's
// build duration as an exponential (Prometheus native) histogram with
// only its status attribute, which keeps its series few.
func buildDurationView() sdkmetric.View {
	return sdkmetric.NewView(
		sdkmetric.Instrument{Name: "buildkit.build.duration", Kind: sdkmetric.InstrumentKindHistogram},
		sdkmetric.Stream{
			Aggregation:     sdkmetric.AggregationBase2ExponentialHistogram{MaxSize: 160, MaxScale: 20},
			AttributeFilter: attribute.NewAllowKeysFilter("status"),
		},
	)
}
