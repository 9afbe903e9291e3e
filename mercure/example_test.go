package mercure_test

import (
	"fmt"

	"github.com/ssegateway/ssegateway/mercure"
)

// A node indexes its subscribers' filters once and asks, for each update,
// which of them it reaches.
func ExampleMatcher() {
	m := mercure.NewMatcher(nil)
	anonymous, _ := m.Add(mercure.Filter{Topics: []string{"https://example.com/books/{id}"}})
	foo, _ := m.Add(mercure.Filter{
		Topics:  []string{"https://example.com/books/{id}"},
		Private: []string{"https://example.com/users/foo/{?topic}"}, // the token's mercure.subscribe
	})
	name := map[*mercure.Interest]string{anonymous: "anonymous", foo: "foo"}

	// A private update for foo: its alternate topic matches foo's claim.
	topics := []string{"https://example.com/books/1", "https://example.com/users/foo/?topic=https%3A%2F%2Fexample.com%2Fbooks%2F1"}
	for _, in := range m.Match(nil, topics, true) {
		fmt.Println("private update to", name[in])
	}
	fmt.Println(len(m.Match(nil, topics, false)), "subscribers get it when public")
	// Output:
	// private update to foo
	// 2 subscribers get it when public
}

// The order of a publish request's checks, as Mercure's.
func ExampleParsePublishForm() {
	body := "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=%7B%22title%22%3A%22Dune%22%7D&id=book-1-v2&private=on"
	u, err := mercure.ParsePublishForm("application/x-www-form-urlencoded", []byte(body), mercure.PublishConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	claim := mercure.Claim{Publish: []string{"https://example.com/books/{id}"}} // from the verified token
	if !claim.CanPublish(nil, u.Topics) {
		fmt.Println("refused")
		return
	}
	if err := u.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%q\n", u.Encode())
	fmt.Print(string(u.AppendEvent(nil)))
	// Output:
	// "119:book-1-v20:0;1;27:https://example.com/books/1{\"title\":\"Dune\"}"
	// id: book-1-v2
	// data: {"title":"Dune"}
}
