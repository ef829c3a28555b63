package natsreg_test

import (
	"testing"

	"github.com/tuanju/tuanju/internal/rendezvous"
	"github.com/tuanju/tuanju/internal/rendezvous/natsreg"
	"github.com/tuanju/tuanju/internal/rendezvous/registrytest"
)

// TestRegistryContract: the registry on NATS keeps rendezvous.Registry's
// contract, as the bbolt store does (TestStoreRegistry). Each registry is
// an embedded server on the test's directory and a client; closing it
// stops both, and opening the directory again starts them again.
func TestRegistryContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T, dir string) rendezvous.Registry {
		srv, err := natsreg.StartEmbedded(dir, natsreg.Embed{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		reg, err := natsreg.Connect(srv.URL(), natsreg.Options{Node: "a"})
		if err != nil {
			t.Fatal(err)
		}
		return withServer{reg, srv}
	})
}

// withServer is a registry whose Close also stops its embedded server.
type withServer struct {
	*natsreg.Registry
	srv *natsreg.Server
}

func (w withServer) Close() error {
	err := w.Registry.Close()
	w.srv.Shutdown()
	return err
}
